"""Background model downloads: jobs in the database, resumable transfers with
progress, cancel and checksum, registration of the result."""
