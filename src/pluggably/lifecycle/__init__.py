"""Local model residency: the scheduler and the local backend built on it."""
