"""The audit log: its records and writer, the hash chain and its sequencer, searches, exports, the anomaly report
and the subjects' access log."""
