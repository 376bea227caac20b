"""Starting and stopping the servers and services; `control.Stack` is the one entry point."""
