// SPDX-License-Identifier: Apache-2.0
// tc-merge validate, the data: every value merge will write, read with the same Source code
// merge reads it with, so that "ready to merge" means merge cannot fail on the data. Room and
// user JIDs are checked as RFC 7622 JIDs (the broker's own parser), affiliations against the
// four the target accepts, every archived message's row (numbers that are numbers) and its
// stanza (well-formed XML, one element).
#include <iterator>
#include <map>
#include <set>
#include <string_view>

#include <expat.h>

#include "storage/columns.h"
#include "xmpp/jid.h"
#include "xmpp/stream_parser.h"

#include "budget.h"
#include "engine.h"

namespace tc::merge {
namespace {

/// Past this many findings of one code in one source, the rest are counted, not listed.
constexpr int kListedPerCode = 20;

class Reporter {
 public:
  Reporter(std::vector<Finding>& findings, std::string where)
      : findings_(findings), where_(std::move(where)) {}
  ~Reporter() {
    for (const auto& [code, n] : counts_) {
      if (n > kListedPerCode) {
        findings_.push_back({Severity::Error, code, where_,
                             std::to_string(n - kListedPerCode) + " more like the above in " +
                                 where_ + " (" + std::to_string(n) + " in all)"});
      }
    }
  }
  Reporter(const Reporter&) = delete;
  Reporter& operator=(const Reporter&) = delete;

  void error(const std::string& code, const std::string& subject, const std::string& message) {
    if (++counts_[code] <= kListedPerCode) {
      findings_.push_back({Severity::Error, code, subject, where_ + ": " + message});
    }
  }

 private:
  std::vector<Finding>& findings_;
  std::string where_;
  std::map<std::string, int> counts_;
};

/// Why `jid` cannot be a room's or an affiliated user's bare JID; "" when it can.
std::string bare_jid_problem(std::string_view jid, bool needs_local) {
  auto parsed = xmpp::Jid::parse(jid);
  if (!parsed) {
    return "not a valid JID (RFC 7622): " + parsed.error().message();
  }
  if (!parsed->resource().empty()) {
    return "a bare JID has no resource, this one has '/" + parsed->resource() + "'";
  }
  if (needs_local && parsed->local().empty()) {
    return "no room name before the '@' (a room JID is name@conference-domain)";
  }
  return "";
}

constexpr std::string_view kStreamHeader =
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
constexpr std::string_view kStreamEnd = "</stream:stream>";

/// The broker's StreamParser (xmpp/stream_parser.cpp) without the tree it builds: the same
/// expat configuration and the same refusals (DTDs, entity declarations, processing
/// instructions, comments, external entities; more than 48 levels or 64 attributes, namespace
/// declarations included). For a large stanza, whose text the tree would hold once more while
/// growing (twice its size at worst), so that validating it costs no more than reading it.
class WellFormed {
 public:
  WellFormed() : parser_(XML_ParserCreateNS("UTF-8", '\x01')) {
    if (parser_ == nullptr) {
      throw std::bad_alloc();
    }
    XML_SetReturnNSTriplet(parser_, 1);
    XML_SetUserData(parser_, this);
    XML_SetElementHandler(parser_, &WellFormed::on_start, &WellFormed::on_end);
    XML_SetCharacterDataHandler(parser_, &WellFormed::on_text);
    XML_SetStartNamespaceDeclHandler(parser_, &WellFormed::on_ns);
    XML_SetStartDoctypeDeclHandler(parser_, [](void* self, const XML_Char*, const XML_Char*,
                                               const XML_Char*, int) { refuse(self); });
    XML_SetEntityDeclHandler(
        parser_, [](void* self, const XML_Char*, int, const XML_Char*, int, const XML_Char*,
                    const XML_Char*, const XML_Char*, const XML_Char*) { refuse(self); });
    XML_SetProcessingInstructionHandler(
        parser_, [](void* self, const XML_Char*, const XML_Char*) { refuse(self); });
    XML_SetCommentHandler(parser_, [](void* self, const XML_Char*) { refuse(self); });
    XML_SetExternalEntityRefHandler(
        parser_, [](XML_Parser, const XML_Char*, const XML_Char*, const XML_Char*,
                    const XML_Char*) { return static_cast<int>(XML_STATUS_ERROR); });
    XML_SetParamEntityParsing(parser_, XML_PARAM_ENTITY_PARSING_NEVER);
  }
  ~WellFormed() { XML_ParserFree(parser_); }
  WellFormed(const WellFormed&) = delete;
  WellFormed& operator=(const WellFormed&) = delete;

  /// Whether `xml`, after the stream header, is exactly one complete element.
  bool one_element(std::string_view xml) {
    constexpr std::size_t kSlice = 256 * 1024;
    if (!parse(kStreamHeader)) {
      return false;
    }
    while (!xml.empty()) {
      const std::string_view slice = xml.substr(0, kSlice);
      xml.remove_prefix(slice.size());
      if (!parse(slice)) {
        return false;
      }
    }
    // The stream's end, as in stanza_is_one_element: nothing may be left open.
    return parse(kStreamEnd) && depth_ == 0 && !failed_ && stanzas_ == 1;
  }

 private:
  static constexpr std::size_t kMaxDepth = 48;
  static constexpr std::size_t kMaxAttributes = 64;

  static WellFormed& self(void* user) { return *static_cast<WellFormed*>(user); }
  static void refuse(void* user) {
    self(user).failed_ = true;
    XML_StopParser(self(user).parser_, XML_FALSE);
  }
  static void XMLCALL on_ns(void* user, const XML_Char*, const XML_Char*) {
    ++self(user).pending_ns_;
  }
  static void XMLCALL on_start(void* user, const XML_Char*, const XML_Char** atts) {
    WellFormed& w = self(user);
    std::size_t attributes = w.pending_ns_;
    w.pending_ns_ = 0;
    for (const XML_Char** a = atts; *a != nullptr; a += 2) {
      ++attributes;
    }
    if (attributes > kMaxAttributes || (w.depth_ > 0 && w.depth_ > kMaxDepth)) {
      return refuse(user);
    }
    ++w.depth_;
  }
  /// Text beside the element (at the stream's level) is no part of a stanza: only whitespace
  /// may be there ("<message/>junk" was once taken for one element).
  static void XMLCALL on_text(void* user, const XML_Char* text, int len) {
    if (self(user).depth_ != 1) {
      return;
    }
    for (int i = 0; i < len; ++i) {
      if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r') {
        return refuse(user);
      }
    }
  }
  static void XMLCALL on_end(void* user, const XML_Char*) {
    WellFormed& w = self(user);
    --w.depth_;
    if (w.depth_ == 1) {
      ++w.stanzas_;
    }
  }

  bool parse(std::string_view bytes) {
    if (!failed_ && XML_Parse(parser_, bytes.data(), static_cast<int>(bytes.size()), XML_FALSE) !=
                        XML_STATUS_OK) {
      failed_ = true;
    }
    return !failed_;
  }

  XML_Parser parser_;
  std::size_t depth_ = 0;
  std::size_t pending_ns_ = 0;
  int stanzas_ = 0;
  bool failed_ = false;
};

}  // namespace

/// Whether `xml` is exactly one well-formed element, as the archive serves it: the broker's
/// own StreamParser, or for a stanza of kLargeValue bytes or more the same checks without the
/// tree (WellFormed).
bool stanza_is_one_element(std::string_view xml) {
  if (xml.size() >= kLargeValue) {
    return WellFormed().one_element(xml);
  }
  // The parser drops text beside stanzas (whitespace keepalives): the treeless check, which
  // refuses it, goes first.
  if (!WellFormed().one_element(xml)) {
    return false;
  }
  // No size limit: the stanza was accepted and stored by the node; its size is not ours to
  // judge here (the merge copies it in pieces, whatever its size).
  xmpp::StreamParser parser(xmpp::ParserLimits{.max_stanza_bytes = xml.size() + 1024});
  std::vector<xmpp::StreamEvent> events;
  // The stream's end after it: a tag left open ("<x/><y") fails there instead of waiting for
  // more (rename_room_addresses would refuse it, and merge stop on it).
  if (!parser.feed(kStreamHeader, events) || !parser.feed(xml, events) ||
      !parser.feed(kStreamEnd, events)) {
    return false;
  }
  int stanzas = 0;
  bool closed = false;
  for (const auto& e : events) {
    stanzas += e.kind == xmpp::StreamEvent::Kind::Stanza ? 1 : 0;
    closed = closed || e.kind == xmpp::StreamEvent::Kind::StreamClose;
  }
  return stanzas == 1 && closed;
}

namespace {

/// One room's JID and domain.
void check_room(const SourceRoom& r, const JobOptions& options, std::set<std::string>& domains,
                Reporter& report) {
  const std::string problem = bare_jid_problem(r.jid, true);
  if (!problem.empty()) {
    report.error("room-jid-invalid", r.jid, "room '" + r.jid + "': " + problem);
    return;
  }
  const std::string domain(xmpp::Jid::parse(r.jid)->domain());
  if (!options.conference_domain.empty() && domain != options.conference_domain) {
    report.error("room-domain", r.jid,
                 "room '" + r.jid + "' is not on the conference domain " +
                     options.conference_domain + " (--conference-domain)");
  }
  domains.insert(domain);
}

}  // namespace

void each_unconvertible_account_column(
    const Row& row,
    const std::function<void(std::string_view column, const std::string& why)>& on_bad) {
  const auto& columns = storage::columns::kAccountColumns;
  for (std::size_t i = 0; i < std::size(columns) && i < row.size(); ++i) {
    if (!columns[i].integer) {
      continue;
    }
    try {
      (void)to_int(row[i]);
    } catch (const DbError& e) {
      on_bad(columns[i].name, e.what());
    }
  }
}

void check_data(Source& source, const std::string& where, const JobOptions& options,
                std::set<std::string>& domains, std::vector<Finding>& findings) {
  Reporter report(findings, where);

  // Accounts go over as rows: their integer columns are converted on the way in.
  source.each_account([&](Row& row) {
    each_unconvertible_account_column(row, [&](std::string_view column, const std::string& why) {
      const std::string user = row.empty() || !row[0] ? "?" : *row[0];
      report.error("account-unreadable", user,
                   "account '" + user + "': " + std::string(column) + ": " + why);
    });
  });

  std::string last_room;
  try {
    source.each_room([&](SourceRoom& r) {
      last_room = r.source_jid;
      check_room(r, options, domains, report);
    });
  } catch (const std::runtime_error& e) {  // DataError, or DbError from the driver
    // The same conversion merge makes (a created_at or subject_at that is not a number).
    report.error("room-unreadable", "rooms",
                 "the room after '" + last_room + "' (in the source's order): " + e.what() +
                     " (the rooms after it were not checked)");
  }

  static const std::set<std::string, std::less<>> kAffiliations = {"owner", "admin", "member",
                                                                   "outcast"};
  source.each_affiliation([&](SourceAffiliation& a) {
    if (kAffiliations.count(a.affiliation) == 0) {
      report.error("affiliation-invalid", a.room_source_jid,
                   "room '" + a.room_source_jid + "': the affiliation of " + a.user_jid + " is '" +
                       a.affiliation + "' (owner, admin, member or outcast)");
    }
    const std::string problem = bare_jid_problem(a.user_jid, false);
    if (!problem.empty()) {
      report.error(
          "affiliation-jid-invalid", a.room_source_jid,
          "room '" + a.room_source_jid + "': the affiliated user '" + a.user_jid + "': " + problem);
    }
  });

  for (const ArchiveStats& room : source.archive_stats()) {
    long long last_key = 0;
    try {
      source.each_message(room.source_jid, 0, [&](SourceMessage& m) {
        if (!stanza_is_one_element(m.stanza_xml)) {
          report.error("message-xml-invalid", room.source_jid,
                       "room '" + room.source_jid + "', message " + std::to_string(m.key) + " (" +
                           m.stanza_id + "): the stored stanza is not one well-formed element");
        }
        last_key = m.key;
        return true;
      });
    } catch (const std::runtime_error& e) {  // DataError, or DbError from the driver
      // The same conversion merge makes: the row after `last_key` would stop the merge.
      report.error("message-unreadable", room.source_jid,
                   "room '" + room.source_jid + "', the message after " +
                       (last_key == 0 ? std::string("the start") : std::to_string(last_key)) +
                       ": " + e.what() + " (the rest of this room was not checked)");
    }
  }
}

}  // namespace tc::merge
