"""Bounce and complaint processing: one classifier for every format, every inbound path, one policy."""
