"""Reports the hub writes for people outside it: the subject access report (GDPR art. 15), gathered from the
services (gather.py), laid out as values (report.py) and drawn as HTML, CSV or PDF (render.py)."""
