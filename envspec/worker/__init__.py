"""`envspec worker`: serve environment requests from a Redis stream."""
