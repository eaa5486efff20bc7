"""The node's local HTTP API (docs/http.md): the control operations as versioned JSON routes,
an event stream, and room routes in the shape hosted-room agent code uses."""
