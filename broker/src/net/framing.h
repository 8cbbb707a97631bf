// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>
#include <string_view>

namespace tc::broker::net {

/// How a client stream is framed on the wire. A TCP stream is one XML document
/// (<stream:stream> ... </stream:stream>, RFC 6120 §4); a WebSocket stream (RFC 7395) sends
/// each top-level element as its own complete document in one text message, opens with
/// <open/> and ends with <close/> in the framing namespace. Everything after framing (SASL,
/// bind, stanzas, XEP-0198) is the same for both.
enum class Framing { Tcp, WebSocket };

inline constexpr std::string_view kFramingNamespace = "urn:ietf:params:xml:ns:xmpp-framing";

/// The server's stream header: <?xml?><stream:stream ...> or <open xmlns=framing .../>.
std::string stream_open(Framing framing, std::string_view id, std::string_view domain);
/// The end of the server's stream: </stream:stream> or <close xmlns=framing/>.
std::string_view stream_close(Framing framing);
/// The start tag of a stream-namespace element ("features", "error"): over WebSocket each
/// message is its own document, so the stream prefix is declared on the element itself.
std::string stream_element_start(Framing framing, std::string_view name);

namespace ws {

/// What one inbound WebSocket text message is to the stream parser (which reads the RFC 6120
/// byte stream): <open/> in the framing namespace becomes a stream header carrying its to,
/// version and xml:lang, <close/> becomes </stream:stream>, and anything else passes unchanged,
/// so that the parser judges it (and reports malformed XML as it does for TCP). A leading XML
/// declaration is dropped. An <open/> in any other namespace (the streams one included) becomes
/// a header in a namespace that is not the streams one, which the session refuses with
/// invalid-namespace.
std::string inbound(std::string_view message);

/// One outbound element as a WebSocket message: a top-level message, presence or iq that
/// inherits jabber:client from the TCP stream gets xmlns='jabber:client' (RFC 7395 §3.3.3);
/// everything else is returned unchanged.
std::string outbound(std::string_view element);

}  // namespace ws
}  // namespace tc::broker::net
