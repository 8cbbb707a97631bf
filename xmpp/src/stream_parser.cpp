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

// Expat (before 2.6, or with reparse deferral off, as we need it) rescans an incomplete
// token from its start on every XML_Parse call, so a long start tag trickled in one byte at
// a time costs quadratic CPU (CVE-2023-52425): 250 KB took over a minute. We therefore keep
// back the trailing incomplete markup token and hand it to expat once it is complete.
// Character data and CDATA content are reported incrementally by expat and pass straight
// through. This tracker follows just enough XML syntax to find where such a token starts
// and ends; holding back never delays an event, because none can complete before the token
// does. For valid XML it ends exactly where expat's token ends; on invalid XML it errs
// towards ending early ('<' ends anything but CDATA), so expat still sees and reports it.
class TokenTracker {
 public:
  /// Scans `bytes`, which start at stream offset `base`.
  void scan(std::string_view bytes, std::uint64_t base) {
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      const char c = bytes[i];
      switch (state_) {
        case State::Text:
          start_if_markup(c, base + i);
          break;
        case State::Open:  // just after '<'
          if (c == '!') {
            state_ = State::Bang;
            bang_.clear();
          } else if (c == '?') {
            state_ = State::Pi;
            run_ = 0;
          } else {
            state_ = State::Tag;
            quote_ = 0;
            tag_char(c, base + i);
          }
          break;
        case State::Tag:
          tag_char(c, base + i);
          break;
        case State::Ref:  // '&' name ';' or '&#' digits ';'
          if (c == ';' || c == '>' || c == '\'' || c == '"' || c == ' ' || c == '\t' || c == '\r' ||
              c == '\n') {
            state_ = State::Text;
          } else if (c == '<' || c == '&') {
            start_if_markup(c, base + i);
          }
          break;
        case State::Bang:  // "<!" then "--", "[CDATA[" or something expat will refuse
          bang_ += c;
          if (bang_ == "--") {
            state_ = State::Comment;
            run_ = 0;
          } else if (bang_ == "[CDATA[") {
            state_ = State::CData;
            run_ = 0;
          } else if (!std::string_view("--").starts_with(bang_) &&
                     !std::string_view("[CDATA[").starts_with(bang_)) {
            state_ = State::Other;
            other_char(c, base + i);
          }
          break;
        case State::Other:  // DOCTYPE and the like: restricted, ends at '>'
          other_char(c, base + i);
          break;
        case State::Pi:       // ends at "?>"
        case State::Comment:  // ends at "-->"
          if (c == '>' && run_ >= (state_ == State::Pi ? 1U : 2U)) {
            state_ = State::Text;
          } else if (c == '<') {
            start_if_markup(c, base + i);
          } else {
            run_ = c == (state_ == State::Pi ? '?' : '-') ? run_ + 1 : 0;
          }
          break;
        case State::CData:  // ends at "]]>"; markup characters are literal inside
          if (c == '>' && run_ >= 2) {
            state_ = State::Text;
          } else {
            run_ = c == ']' ? run_ + 1 : 0;
          }
          break;
      }
    }
  }

  /// Stream offset where the trailing incomplete token starts, or `end` when there is none
  /// that needs holding back.
  std::uint64_t hold_from(std::uint64_t end) const {
    return state_ == State::Text || state_ == State::CData ? end : begin_;
  }

 private:
  enum class State { Text, Open, Tag, Ref, Bang, Other, Pi, Comment, CData };

  void start_if_markup(char c, std::uint64_t at) {
    if (c == '<') {
      state_ = State::Open;
      begin_ = at;
    } else if (c == '&') {
      state_ = State::Ref;
      begin_ = at;
    } else {
      state_ = State::Text;
    }
  }
  void tag_char(char c, std::uint64_t at) {
    if (c == '<') {
      start_if_markup(c, at);  // never valid inside a tag: let expat see it now
    } else if (quote_ != 0) {
      if (c == quote_) {
        quote_ = 0;
      }
    } else if (c == '\'' || c == '"') {
      quote_ = c;
    } else if (c == '>') {
      state_ = State::Text;
    }
  }
  void other_char(char c, std::uint64_t at) {
    if (c == '>') {
      state_ = State::Text;
    } else if (c == '<') {
      start_if_markup(c, at);
    }
  }

  State state_ = State::Text;
  std::uint64_t begin_ = 0;
  char quote_ = 0;
  unsigned run_ = 0;  // consecutive '?', '-' or ']' just seen
  std::string bang_;
};

// The expat adapter behind StreamParser (which only forwards to it).
struct ExpatStream {
  explicit ExpatStream(const ParserLimits& l) : limits(l) { create(); }
  ~ExpatStream() { destroy(); }
  ExpatStream(const ExpatStream&) = delete;
  ExpatStream& operator=(const ExpatStream&) = delete;

  void create();
  void destroy();
  Result<void> feed(std::string_view bytes, std::vector<StreamEvent>& events);
  void parse(std::string_view bytes);

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
  std::uint64_t accepted = 0;  // bytes given to feed()
  TokenTracker tracker;
  std::string held;  // the end of what feed() accepted, not yet given to expat
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
  // TokenTracker guards against the rescanning cost that deferral exists to avoid.
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
  accepted = 0;
  tracker = TokenTracker();
  held.clear();
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

void ExpatStream::parse(std::string_view bytes) {
  // XML_Parse takes an int length; a larger buffer goes through in slices.
  constexpr std::size_t kMaxSlice = 1U << 30;
  while (!bytes.empty() && !error) {
    const std::string_view slice = bytes.substr(0, kMaxSlice);
    bytes.remove_prefix(slice.size());
    const auto status = XML_Parse(parser, slice.data(), static_cast<int>(slice.size()), XML_FALSE);
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
  }
}

Result<void> ExpatStream::feed(std::string_view bytes, std::vector<StreamEvent>& events) {
  if (error) {
    return error;
  }
  // RFC 6120 §11.6: UTF-8 only. Expat would still switch to UTF-16 on a byte order mark or a
  // NUL among the first two bytes, despite the encoding forced in create(). None of these
  // bytes can start a UTF-8 XML document, and later on expat rejects them by itself.
  for (std::size_t i = 0; accepted + i < 2 && i < bytes.size(); ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c == 0x00 || c == 0xFE || c == 0xFF) {
      error = make_error_code(Errc::NotWellFormed);
      return error;
    }
  }
  const std::uint64_t base = accepted;
  accepted += bytes.size();
  tracker.scan(bytes, base);
  const std::uint64_t hold_from = tracker.hold_from(accepted);
  const std::uint64_t expat_fed = base - held.size();
  TC_ASSERT(hold_from >= expat_fed, "held bytes start at the incomplete token");
  out = &events;
  if (hold_from <= base) {
    // The incomplete token began before this chunk (it is what `held` holds): keep waiting.
    parse(std::string_view(held).substr(0, hold_from - expat_fed));
    held.erase(0, hold_from - expat_fed);
    held.append(bytes);
  } else {
    // Two calls rather than a copy: expat carries an incomplete token over by itself, and
    // does so once here.
    const auto split = static_cast<std::size_t>(hold_from - base);
    parse(held);
    parse(bytes.substr(0, split));
    held.assign(bytes.substr(split));
  }
  out = nullptr;
  // Held bytes and a token expat buffers produce no callback, so the budget is also checked
  // against everything accepted so far.
  if (!error && !closed && accepted - item_start > limits.max_stanza_bytes) {
    error = make_error_code(Errc::PolicyViolation);
  }
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

Result<XmlElement> parse_element(std::string_view xml) {
  static constexpr std::string_view kHeader =
      "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
  StreamParser parser(ParserLimits{.max_stanza_bytes = xml.size() + 1024});
  std::vector<StreamEvent> events;
  if (!parser.feed(kHeader, events) || !parser.feed(xml, events)) {
    return make_error_code(Errc::NotWellFormed);
  }
  XmlElement* found = nullptr;
  for (auto& e : events) {
    if (e.kind == StreamEvent::Kind::Stanza) {
      if (found != nullptr) {
        return make_error_code(Errc::NotWellFormed);
      }
      found = &e.element;
    }
  }
  if (found == nullptr) {
    return make_error_code(Errc::NotWellFormed);
  }
  return std::move(*found);
}

}  // namespace tc::xmpp
