"""Dashboard pages: the wall screen, the lighting console, the alarm console."""
