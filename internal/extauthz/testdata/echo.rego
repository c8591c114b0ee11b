# An object-result policy for the OPA Envoy plugin that allows every request
# and echoes, in headers for the upstream request, what OPA saw in the
# CheckRequest. Used to check the request the client builds against the real
# peer's view of it.
package palisade.echo

import rego.v1

attrs := input.attributes

http_request := attrs.request.http

result := {
	"allowed": true,
	"headers": {
		"x-seen-method": http_request.method,
		"x-seen-path": http_request.path,
		"x-seen-host": http_request.host,
		"x-seen-authority": http_request.headers[":authority"],
		"x-seen-user-agent": http_request.headers["user-agent"],
		"x-seen-destination": attrs.destination.principal,
		"x-seen-source": attrs.source.principal,
		"x-seen-source-address": sprintf("%v", [attrs.source.address]),
		"x-seen-parsed-path": concat("/", input.parsed_path),
		"x-seen-parsed-query": concat(",", input.parsed_query.id),
		"x-seen-body-name": input.parsed_body.name,
		"x-seen-context": attrs.contextExtensions.tenant,
	},
	"response_headers_to_add": {"x-decision": "echo"},
	"request_headers_to_remove": ["authorization"],
}
