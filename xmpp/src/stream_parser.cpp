// SPDX-License-Identifier: Apache-2.0
#include "xmpp/stream_parser.h"

#include <climits>
#include <cstdint>
#include <string>
#include <utility>

#include <expat.h>

#include "base/assert.h"
#include "xmpp/errc.h"
#include "xmpp/namespaces.h"

namespace tc::xmpp {
namespace {

// Expat reports names as "uri SEP local SEP prefix" (XML_SetReturnNSTriplet). U+0001 is not
// an XML 1.0 character, so it can never occur inside a namespace URI or a name.
constexpr char kSep = '\x01';
constexpr std::string_view kXmlNamespace = "http://www.w3.org/XML/1998/namespace";

struct QName {
  std::string_view uri;
  std::string_view local;
  std::string_view prefix;
};

QName split_name(const XML_Char* raw) {
  std::string_view full(raw);
  const auto first = full.find(kSep);
  if (first == std::string_view::npos) {
    return {{}, full, {}};
  }
  QName q;
  q.uri = full.substr(0, first);
  std::string_view rest = full.substr(first + 1);
  const auto second = rest.find(kSep);
  if (second == std::string_view::npos) {
    q.local = rest;
  } else {
    q.local = rest.substr(0, second);
    q.prefix = rest.substr(second + 1);
  }
  return q;
}

// Attribute key as written on the wire: "xml:lang" for the XML namespace (whatever prefix a
// peer might claim for it, only "xml" can be bound to it), "prefix:local" otherwise.
std::string attribute_key(const QName& q) {
  if (q.uri.empty()) {
    return std::string(q.local);
  }
  std::string key;
  const std::string_view prefix = q.uri == kXmlNamespace ? std::string_view("xml") : q.prefix;
  key.reserve(prefix.size() + 1 + q.local.size());
  key.append(prefix).append(":").append(q.local);
  return key;
}

// The expat adapter behind StreamParser (which only forwards to it).
struct ExpatStream {
  explicit ExpatStream(const ParserLimits& l) : limits(l) { create(); }
  ~ExpatStream() { destroy(); }
  ExpatStream(const ExpatStream&) = delete;
  ExpatStream& operator=(const ExpatStream&) = delete;

  void create();
  void destroy();
  Result<void> feed(std::string_view bytes, std::vector<StreamEvent>& events);

  // Records the first error and stops expat. Handlers still called afterwards ("some
  // call-backs may still follow", expat.h) are ignored because `error` is set.
  void fail(Errc e) {
    if (!error) {
      error = make_error_code(e);
    }
    XML_StopParser(parser, XML_FALSE);
  }

  // Offset in the stream just past the event expat is reporting.
  std::uint64_t event_end() const {
    return static_cast<std::uint64_t>(XML_GetCurrentByteIndex(parser)) +
           static_cast<std::uint64_t>(XML_GetCurrentByteCount(parser));
  }
  bool over_stanza_budget(std::uint64_t end) const {
    return end - item_start > limits.max_stanza_bytes;
  }

  void flush_text() {
    if (!pending_text.empty()) {
      stack.back()->add_text(std::move(pending_text));
      pending_text.clear();
    }
  }

  void on_start(const XML_Char* name, const XML_Char** atts);
  void on_end();
  void on_text(const XML_Char* s, int len);

  ParserLimits limits;
  XML_Parser parser = nullptr;
  std::vector<StreamEvent>* out = nullptr;
  ErrorCode error;
  // Open elements, the stream root included: 1 between stanzas, 2+ inside one.
  std::size_t depth = 0;
  bool closed = false;
  // Stream offset where the current top-level item (header or stanza) starts: everything
  // since the end of the previous one counts against max_stanza_bytes.
  std::uint64_t item_start = 0;
  std::uint64_t fed = 0;
  XmlElement stanza;
  std::vector<XmlElement*> stack;  // path from `stanza` to the innermost open element
  // Character data not yet attached: coalesced so that text split over many callbacks (and
  // many feeds) becomes one node, appended in amortised linear time.
  std::string pending_text;
  // Namespace declarations of the element about to start (prefix, uri).
  std::vector<std::pair<std::string, std::string>> pending_ns;
};

ExpatStream& self(void* user) {
  return *static_cast<ExpatStream*>(user);
}

void XMLCALL start_handler(void* user, const XML_Char* name, const XML_Char** atts) {
  self(user).on_start(name, atts);
}
void XMLCALL end_handler(void* user, const XML_Char* /*name*/) {
  self(user).on_end();
}
void XMLCALL text_handler(void* user, const XML_Char* s, int len) {
  self(user).on_text(s, len);
}

void XMLCALL ns_start_handler(void* user, const XML_Char* prefix, const XML_Char* uri) {
  auto& impl = self(user);
  if (impl.error) {
    return;
  }
  impl.pending_ns.emplace_back(prefix == nullptr ? "" : prefix, uri == nullptr ? "" : uri);
}

// RFC 6120 §11.1: no comments, processing instructions, DTD subsets or entity declarations.
void XMLCALL doctype_handler(void* user, const XML_Char*, const XML_Char*, const XML_Char*, int) {
  self(user).fail(Errc::RestrictedXml);
}
void XMLCALL entity_decl_handler(void* user, const XML_Char*, int, const XML_Char*, int,
                                 const XML_Char*, const XML_Char*, const XML_Char*,
                                 const XML_Char*) {
  self(user).fail(Errc::RestrictedXml);
}
void XMLCALL pi_handler(void* user, const XML_Char*, const XML_Char*) {
  self(user).fail(Errc::RestrictedXml);
}
void XMLCALL comment_handler(void* user, const XML_Char*) {
  self(user).fail(Errc::RestrictedXml);
}
int XMLCALL external_entity_handler(XML_Parser, const XML_Char*, const XML_Char*, const XML_Char*,
                                    const XML_Char*) {
  return XML_STATUS_ERROR;  // never fetch anything
}

void ExpatStream::create() {
  // The encoding argument overrides any encoding declaration: XMPP is UTF-8 only
  // (RFC 6120 §11.6).
  parser = XML_ParserCreateNS("UTF-8", kSep);
  TC_CHECK(parser != nullptr, "expat could not allocate a parser");
  XML_SetReturnNSTriplet(parser, 1);
  XML_SetUserData(parser, this);
  XML_SetElementHandler(parser, start_handler, end_handler);
  XML_SetCharacterDataHandler(parser, text_handler);
  XML_SetStartNamespaceDeclHandler(parser, ns_start_handler);
  XML_SetStartDoctypeDeclHandler(parser, doctype_handler);
  XML_SetEntityDeclHandler(parser, entity_decl_handler);
  XML_SetProcessingInstructionHandler(parser, pi_handler);
  XML_SetCommentHandler(parser, comment_handler);
  XML_SetExternalEntityRefHandler(parser, external_entity_handler);
  XML_SetParamEntityParsing(parser, XML_PARAM_ENTITY_PARSING_NEVER);
#ifdef TC_EXPAT_HAS_REPARSE_DEFERRAL
  // Expat >= 2.6 (and Debian's backport) may hold back a completed token until more bytes
  // arrive; an XMPP peer waits for our answer, so every complete stanza must come out now.
  XML_SetReparseDeferralEnabled(parser, XML_FALSE);
#endif
}

void ExpatStream::destroy() {
  if (parser != nullptr) {
    XML_ParserFree(parser);
    parser = nullptr;
  }
  error.clear();
  depth = 0;
  closed = false;
  item_start = 0;
  fed = 0;
  stanza = XmlElement();
  stack.clear();
  pending_text.clear();
  pending_ns.clear();
}

void ExpatStream::on_start(const XML_Char* name, const XML_Char** atts) {
  if (error) {
    return;
  }
  std::size_t attr_count = pending_ns.size();
  for (const XML_Char** a = atts; *a != nullptr; a += 2) {
    ++attr_count;
  }
  if (attr_count > limits.max_attributes) {
    return fail(Errc::PolicyViolation);
  }
  if (over_stanza_budget(event_end())) {
    return fail(Errc::PolicyViolation);
  }
  const QName q = split_name(name);
  XmlElement* element = nullptr;
  XmlElement root;
  if (depth == 0) {
    // RFC 6120 §4.8.1: the root must be <stream> in the streams namespace.
    if (q.uri != ns::kStream || q.local != "stream") {
      return fail(Errc::InvalidNamespace);
    }
    root = XmlElement(std::string(q.local), std::string(q.uri));
    element = &root;
  } else {
    // Nesting level below the root: 1 for the stanza itself.
    if (depth > limits.max_depth) {
      return fail(Errc::PolicyViolation);
    }
    if (depth == 1) {
      stanza = XmlElement(std::string(q.local), std::string(q.uri));
      stack.clear();
      stack.push_back(&stanza);
    } else {
      flush_text();
      stack.push_back(&stack.back()->add_child(std::string(q.local), std::string(q.uri)));
    }
    element = stack.back();
  }
  for (auto& [prefix, uri] : pending_ns) {
    // The default namespace is carried by xmlns(); only the stream header, whose own
    // namespace is the streams one, keeps it as an attribute so callers can check it.
    if (prefix.empty()) {
      if (depth == 0) {
        element->set_attr("xmlns", std::move(uri));
      }
    } else {
      element->set_attr("xmlns:" + prefix, std::move(uri));
    }
  }
  pending_ns.clear();
  for (const XML_Char** a = atts; *a != nullptr; a += 2) {
    const QName attr = split_name(a[0]);
    std::string key = attribute_key(attr);
    // A prefixed attribute may lean on a declaration made by an ancestor (even the stream
    // header). Repeat it here so that the element serialises on its own, as it does when a
    // stanza is forwarded.
    if (!attr.uri.empty() && attr.uri != kXmlNamespace) {
      std::string decl = "xmlns:" + std::string(attr.prefix);
      if (!element->has_attr(decl)) {
        element->set_attr(std::move(decl), std::string(attr.uri));
      }
    }
    element->set_attr(std::move(key), a[1]);
  }
  ++depth;
  if (depth == 1) {
    item_start = event_end();
    out->push_back(StreamEvent{StreamEvent::Kind::StreamOpen, std::move(root)});
  }
}

void ExpatStream::on_end() {
  if (error) {
    return;
  }
  TC_ASSERT(depth > 0, "expat balances start and end tags");
  --depth;
  if (depth == 0) {
    // RFC 6120 §4.4: the closing stream tag ends the stream.
    closed = true;
    out->push_back(StreamEvent{StreamEvent::Kind::StreamClose,
                               XmlElement("stream", std::string(ns::kStream))});
    return;
  }
  const std::uint64_t end = event_end();
  if (over_stanza_budget(end)) {
    return fail(Errc::PolicyViolation);
  }
  flush_text();
  stack.pop_back();
  if (depth == 1) {
    item_start = end;
    out->push_back(StreamEvent{StreamEvent::Kind::Stanza, std::move(stanza)});
    stanza = XmlElement();
  }
}

void ExpatStream::on_text(const XML_Char* s, int len) {
  if (error) {
    return;
  }
  const std::uint64_t end = event_end();
  if (depth <= 1) {
    // Between stanzas: whitespace keepalives (RFC 6120 §4.6.1). Other text has no meaning at
    // this level and is dropped; either way it does not count towards the next stanza.
    item_start = end;
    return;
  }
  if (over_stanza_budget(end)) {
    return fail(Errc::PolicyViolation);
  }
  pending_text.append(s, static_cast<std::size_t>(len));
}

Result<void> ExpatStream::feed(std::string_view bytes, std::vector<StreamEvent>& events) {
  if (error) {
    return error;
  }
  // RFC 6120 §11.6: UTF-8 only. Expat would still switch to UTF-16 on a byte order mark or a
  // NUL among the first two bytes, despite the encoding forced in create(). None of these
  // bytes can start a UTF-8 XML document, and later on expat rejects them by itself.
  for (std::size_t i = 0; fed + i < 2 && i < bytes.size(); ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c == 0x00 || c == 0xFE || c == 0xFF) {
      error = make_error_code(Errc::NotWellFormed);
      return error;
    }
  }
  out = &events;
  // XML_Parse takes an int length; a larger buffer goes through in slices.
  constexpr std::size_t kMaxSlice = 1u << 30;
  while (!bytes.empty() && !error) {
    const std::string_view slice = bytes.substr(0, kMaxSlice);
    bytes.remove_prefix(slice.size());
    const auto status = XML_Parse(parser, slice.data(), static_cast<int>(slice.size()), XML_FALSE);
    fed += slice.size();
    if (status != XML_STATUS_OK && !error) {
      switch (XML_GetErrorCode(parser)) {
        case XML_ERROR_EXTERNAL_ENTITY_HANDLING:
        case XML_ERROR_NOT_STANDALONE:
        case XML_ERROR_ENTITY_DECLARED_IN_PE:
          error = make_error_code(Errc::RestrictedXml);
          break;
        case XML_ERROR_NO_MEMORY:
          error = make_error_code(Errc::PolicyViolation);
          break;
        default:
          error = make_error_code(Errc::NotWellFormed);
          break;
      }
    }
    // A partial token (say, a start tag that never ends) is buffered by expat without any
    // callback, so the budget is also checked against everything fed so far.
    if (!error && !closed && fed - item_start > limits.max_stanza_bytes) {
      error = make_error_code(Errc::PolicyViolation);
    }
  }
  out = nullptr;
  if (error) {
    return error;
  }
  return {};
}

}  // namespace

struct StreamParser::Impl {
  explicit Impl(const ParserLimits& limits) : stream(limits) {}
  ExpatStream stream;
};

StreamParser::StreamParser(ParserLimits limits)
    : limits_(limits), impl_(std::make_unique<Impl>(limits_)) {}

StreamParser::~StreamParser() = default;

Result<void> StreamParser::feed(std::string_view bytes, std::vector<StreamEvent>& out) {
  return impl_->stream.feed(bytes, out);
}

void StreamParser::reset() {
  impl_->stream.destroy();
  impl_->stream.create();
}

}  // namespace tc::xmpp
