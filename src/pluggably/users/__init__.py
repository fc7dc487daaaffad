"""Users, their roles and profiles."""
