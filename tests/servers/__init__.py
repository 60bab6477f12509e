"""Real servers for the tests: each module starts one on a free loopback port, once per session."""
