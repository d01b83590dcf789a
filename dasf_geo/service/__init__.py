"""Layer 6, service: the daeploy-style service API on top of backend + transport."""
