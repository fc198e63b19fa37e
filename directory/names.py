"""The shapes of identifiers PROTOCOL.md fixes: subjects' national numbers, and names of agencies,
categories and purposes."""

import re

SUBJECT = re.compile(r"[0-9A-Za-z.-]{1,64}")
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
