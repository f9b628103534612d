"""Stand-alone programs the suite runs as child processes: the raw loops, the peers, the
webhook receiver and the API caller. Each is run by its path, imports nothing from the
repository, and prints one JSON document (or, the receiver, its port) on stdout."""
