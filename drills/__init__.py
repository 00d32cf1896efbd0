"""Reliability drills (make drill)."""
