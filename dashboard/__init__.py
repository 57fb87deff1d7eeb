"""The Panel dashboard: one live store per process, wall / lighting / alarms pages, roles."""
