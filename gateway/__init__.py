"""The HTTP gateway: translates REST and Server-Sent Events to gRPC and serves the web UI."""
