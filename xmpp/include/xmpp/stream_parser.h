// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "xmpp/xml_element.h"

namespace tc::xmpp {

/// Hard limits enforced while parsing; exceeding one fails with Errc::PolicyViolation.
/// The stream header counts as a top-level element too, and namespace declarations count
/// as attributes.
struct ParserLimits {
  std::size_t max_stanza_bytes = std::size_t{256} * 1024;  ///< raw bytes of one top-level stanza
  std::size_t max_depth = 48;       ///< element nesting below the stream root
  std::size_t max_attributes = 64;  ///< attributes on one element
};

/// One thing the parser recognised in the byte stream.
struct StreamEvent {
  enum class Kind {
    StreamOpen,   ///< the <stream:stream> header; `element` holds its attributes
    Stanza,       ///< a complete depth-1 element (message, iq, presence, auth, ...)
    StreamClose,  ///< </stream:stream>
  };
  Kind kind;
  XmlElement element;
};

/// Incremental, sans-I/O XML stream parser for RFC 6120 streams (expat underneath).
/// Bytes may arrive split at any point. DTDs, entity declarations, processing instructions
/// and comments fail with Errc::RestrictedXml; malformed XML with Errc::NotWellFormed;
/// a limit with Errc::PolicyViolation. After an error the parser stays failed until reset().
/// Not thread-safe; one per connection.
class StreamParser {
 public:
  explicit StreamParser(ParserLimits limits = {});
  ~StreamParser();
  StreamParser(const StreamParser&) = delete;
  StreamParser& operator=(const StreamParser&) = delete;

  /// Parses `bytes`, appending recognised events to `out` (events before an error are
  /// still appended).
  Result<void> feed(std::string_view bytes, std::vector<StreamEvent>& out);

  /// Starts a new stream (after STARTTLS or SASL success, RFC 6120 §5.4.3.3 / §6.4.6).
  void reset();

  const ParserLimits& limits() const { return limits_; }

 private:
  struct Impl;
  ParserLimits limits_;
  std::unique_ptr<Impl> impl_;
};

/// Parses one element serialised on its own (XmlElement::to_string() with no parent namespace),
/// e.g. a stanza or payload the server stored. Unprefixed elements without an xmlns of their own
/// are in jabber:client. Errc::NotWellFormed unless `xml` is exactly one well-formed element.
Result<XmlElement> parse_element(std::string_view xml);

}  // namespace tc::xmpp
