"""The commands of the rnnkit CLI; each only calls the library."""
