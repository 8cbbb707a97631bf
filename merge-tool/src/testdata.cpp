// SPDX-License-Identifier: Apache-2.0
// Realistic legacy databases for tests and benchmarks: hundreds of rooms with every
// configuration option, affiliations, unicode subjects and bodies, large bodies, presence rows,
// colliding room names on request, and any number of messages (written with COPY on
// PostgreSQL, so millions take seconds). Deterministic for a given seed.
#include "testdata.h"

#include <array>
#include <cmath>
#include <random>
#include <span>

#include <boost/json.hpp>

#include "storage/columns.h"
#include "storage/store.h"

#include "db.h"
#include "transform.h"

namespace tc::merge {
namespace {

constexpr std::array kSentences = {
    "Good morning everyone, the build is green again.",
    "Können wir das Meeting auf 15 Uhr verschieben?",
    "Le déploiement est prévu pour jeudi soir.",
    "¿Alguien revisó el informe de ayer?",
    "Тестовый прогон завершён без ошибок.",
    "今日は雨なので在宅勤務します。",
    "请把最新的日志发给我。",
    "새 버전이 배포되었습니다 🎉",
    "שלום לכולם, הפגישה מתחילה עכשיו.",
    "مرحبا، هل الخادم يعمل الآن؟",
    "Ping @ops: latency p99 is 42 ms <still> fine & stable.",
    "Emoji check: 👩‍💻🚀🔥 — mixed with \"quotes\" and 'apostrophes'.",
    "Line one\nLine two\n\tindented line three",
    "Ελέγξτε το νέο διάγραμμα, παρακαλώ.",
    "A backslash \\ and a tab\tinside the body.",
};

constexpr std::array kNicks = {"alice",   "bob",    "Zoë",        "李雷", "O'Brien",
                               "dev-ops", "ナオミ", "Ærøskøbing", "mike", "nina"};

std::string base62(std::mt19937_64& rng, int n) {
  static constexpr char kAlphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string out;
  for (int i = 0; i < n; ++i) {
    out.push_back(kAlphabet[rng() % 62]);
  }
  return out;
}

std::string base64_of(std::uint64_t seed, int bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::mt19937_64 rng(seed);
  std::string raw;
  for (int i = 0; i < bytes; ++i) {
    raw.push_back(static_cast<char>(rng() & 0xff));
  }
  std::string out;
  for (std::size_t i = 0; i < raw.size(); i += 3) {
    const unsigned n = (static_cast<unsigned char>(raw[i]) << 16) |
                       (i + 1 < raw.size() ? static_cast<unsigned char>(raw[i + 1]) << 8 : 0) |
                       (i + 2 < raw.size() ? static_cast<unsigned char>(raw[i + 2]) : 0);
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(i + 1 < raw.size() ? kAlphabet[(n >> 6) & 63] : '=');
    out.push_back(i + 2 < raw.size() ? kAlphabet[n & 63] : '=');
  }
  return out;
}

std::string timestamp_text(long long ms) {
  const long long days = ms / 86400000;
  long long rest = ms % 86400000;
  // civil_from_days (Howard Hinnant)
  long long z = days + 719468;
  const long long era = (z >= 0 ? z : z - 146096) / 146097;
  const long long doe = z - era * 146097;
  const long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  long long y = yoe + era * 400;
  const long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const long long mp = (5 * doy + 2) / 153;
  const long long d = doy - (153 * mp + 2) / 5 + 1;
  const long long m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
  char buffer[96];
  std::snprintf(buffer, sizeof buffer, "%04lld-%02lld-%02lld %02lld:%02lld:%02lld.%03lld", y, m, d,
                rest / 3600000, rest / 60000 % 60, rest / 1000 % 60, rest % 1000);
  return buffer;
}

struct Room {
  std::string local;
  int index = 0;
};

/// Room local parts: colliding ones first (same in both databases), then per-database ones,
/// a few of them with non-ASCII letters (allowed by nodeprep).
std::vector<Room> room_names(char label, const TestdataOptions& o) {
  std::vector<Room> rooms;
  for (int i = 0; i < o.rooms; ++i) {
    char name[64];
    if (i < o.collisions) {
      std::snprintf(name, sizeof name, "shared-%04d", i);
    } else if (i % 25 == 7) {
      std::snprintf(name, sizeof name, "café-%c-%04d", label, i);
    } else {
      std::snprintf(name, sizeof name, "team-%c-%04d", label, i);
    }
    rooms.push_back({name, i});
  }
  return rooms;
}

std::string body_for(std::mt19937_64& rng, long long n, int large_every) {
  std::string body = kSentences[rng() % kSentences.size()];
  if (rng() % 3 == 0) {
    body += " ";
    body += kSentences[rng() % kSentences.size()];
  }
  if (large_every > 0 && n % large_every == large_every - 1) {
    // A pasted log: ~70 kB, past the vendor's 4000-character VARCHAR columns.
    std::string large;
    while (large.size() < 70000) {
      large +=
          "[" + std::to_string(large.size()) + "] " + kSentences[rng() % kSentences.size()] + "\n";
    }
    body += "\n" + large;
  }
  return body;
}

std::string config_json(const Room& r, std::mt19937_64& rng) {
  boost::json::object o;
  const int i = r.index;
  o["name"] = "Room " + r.local + (i % 4 == 0 ? " — Ünïcødé 会议室" : "");
  o["description"] = i % 2 == 0 ? "Discussion of " + r.local : "";
  o["persistent"] = true;
  o["public"] = i % 3 != 0;
  o["members_only"] = i % 4 == 0;
  o["password_protected"] = i % 7 == 0;
  o["password"] = i % 7 == 0 ? "s3cret-" + std::to_string(i) : "";
  o["moderated"] = i % 5 == 0;
  o["max_users"] = std::array{0, 20, 200, 1000}[static_cast<std::size_t>(i % 4)];
  o["whois"] = i % 2 == 0 ? "moderators" : "anyone";
  o["change_subject"] = i % 3 == 1;
  o["allow_pm"] =
      std::array{"anyone", "participants", "moderators", "none"}[static_cast<std::size_t>(i % 4)];
  o["history_length"] = std::array{0, 20, 50, 200}[static_cast<std::size_t>(i % 4)];
  o["allow_invites"] = i % 2 == 1;
  o["retention_days"] = std::array{0, 30, 365}[static_cast<std::size_t>(i % 3)];
  o["occupant_id_salt"] = base62(rng, 32);
  return boost::json::serialize(o);
}

std::string vendor_config(const Room& r, const std::string& jid) {
  const int i = r.index;
  std::string x = "<iq type='set' from='owner@example.com/desk' to='" + jid + "' id='cfg" +
                  std::to_string(i) +
                  "'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' "
                  "type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/"
                  "muc#roomconfig</value></field>";
  const auto field = [&x](const char* var, const std::string& value) {
    x += std::string("<field var='") + var + "'><value>" + xml_escape(value) + "</value></field>";
  };
  field("muc#roomconfig_roomname", "Room " + r.local + (i % 4 == 0 ? " — Ünïcødé" : ""));
  field("muc#roomconfig_roomdesc", "Imported & <escaped> description " + std::to_string(i));
  field("muc#roomconfig_persistentroom", "1");
  field("muc#roomconfig_publicroom", i % 3 != 0 ? "1" : "0");
  field("muc#roomconfig_membersonly", i % 4 == 0 ? "1" : "0");
  field("muc#roomconfig_passwordprotectedroom", i % 7 == 0 ? "1" : "0");
  field("muc#roomconfig_roomsecret", i % 7 == 0 ? "pw" + std::to_string(i) : "");
  field("muc#roomconfig_moderatedroom", i % 5 == 0 ? "1" : "0");
  field("muc#roomconfig_maxusers", i % 4 == 0 ? "none" : std::to_string(50 * (i % 4)));
  field("muc#roomconfig_whois", i % 2 == 0 ? "moderators" : "anyone");
  field("muc#roomconfig_changesubject", i % 3 == 1 ? "1" : "0");
  field("muc#roomconfig_allowinvites", i % 2 == 1 ? "1" : "0");
  field("muc#roomconfig_enablelogging", "1");
  field("x-cisco#roomconfig_customfield", "ignored");
  x += "</x></query></iq>";
  return x;
}

/// A tc_ table's columns (storage/columns.h), for a Loader whose rows follow that order.
std::vector<Column> tc_columns(std::span<const Column> columns) {
  return {columns.begin(), columns.end()};
}

/// Inserts `rows` in batches; keeps memory flat for millions of rows.
class Loader {
 public:
  Loader(Db& db, std::string table, std::vector<Column> columns)
      : db_(db), table_(std::move(table)), columns_(std::move(columns)) {}
  ~Loader() = default;
  void add(Row row) {
    rows_.push_back(std::move(row));
    if (rows_.size() >= 5000) {
      flush();
    }
  }
  void flush() {
    if (rows_.empty()) {
      return;
    }
    std::size_t i = 0;
    db_.bulk_insert(table_, columns_, [&](Row& row) {
      if (i == rows_.size()) {
        return false;
      }
      row = std::move(rows_[i++]);
      return true;
    });
    rows_.clear();
  }

 private:
  Db& db_;
  std::string table_;
  std::vector<Column> columns_;
  std::vector<Row> rows_;
};

/// Picks a room for the next message: a skewed distribution, as real rooms are (a few busy
/// ones, a long tail), but every room gets some.
std::size_t pick_room(std::mt19937_64& rng, std::size_t rooms, long long n) {
  if (n < static_cast<long long>(rooms)) {
    return static_cast<std::size_t>(n);
  }
  const double u = std::uniform_real_distribution<double>(0, 1)(rng);
  return std::min(rooms - 1, static_cast<std::size_t>(static_cast<double>(rooms) * u * u));
}

void fill_tc(Db& db, char label, const TestdataOptions& o) {
  std::mt19937_64 rng(o.seed * 7919 + static_cast<unsigned>(label));
  const long long base = 1672531200000LL + (label == 'b' ? 3600000 : 0);  // 2023-01-01
  Transaction tx(db);
  {
    Loader accounts(db, "tc_accounts", tc_columns(storage::columns::kAccountColumns));
    for (int i = 0; i < o.accounts; ++i) {
      // A third of the users exist on both nodes (same credentials): ids overlap by design.
      const int id = label == 'a' ? i : (i < o.accounts / 3 ? i : o.accounts + i);
      char name[32];
      std::snprintf(name, sizeof name, "user%04d", id);
      const std::uint64_t h = std::hash<std::string>{}(name);
      accounts.add({std::string(name), base64_of(h, 16), std::string("4096"), base64_of(h + 1, 20),
                    base64_of(h + 2, 20), base64_of(h + 3, 16), std::string("4096"),
                    base64_of(h + 4, 32), base64_of(h + 5, 32),
                    std::to_string(base - 86400000LL * (i + 1))});
    }
    accounts.flush();
  }
  const std::vector<Room> rooms = room_names(label, o);
  {
    Loader loader(db, "tc_rooms", tc_columns(storage::columns::kRoomColumns));
    Loader affs(db, "tc_room_affiliations", tc_columns(storage::columns::kAffiliationColumns));
    for (const Room& r : rooms) {
      const std::string jid = r.local + "@" + o.domain;
      loader.add(
          {jid, config_json(r, rng), std::string("1"),
           r.index % 5 == 0
               ? std::string()
               : "Thema: " +
                     std::string(kSentences[static_cast<std::size_t>(r.index) % kSentences.size()]),
           std::string(kNicks[static_cast<std::size_t>(r.index) % kNicks.size()]),
           std::to_string(base + r.index * 1000LL), std::string("node-") + label,
           std::to_string(base - 1000LL * (r.index + 1))});
      const auto user = [&](int n) {
        return "user" +
               std::string(n < 10     ? "000"
                           : n < 100  ? "00"
                           : n < 1000 ? "0"
                                      : "") +
               std::to_string(n) + "@" + o.user_domain;
      };
      const int owner = r.index % std::max(1, o.accounts / 3);
      affs.add({jid, user(owner), std::string("owner"), std::string("creator"),
                std::string(kNicks[static_cast<std::size_t>(owner) % kNicks.size()])});
      // In colliding rooms B disagrees about one user (an affiliation conflict to report).
      const bool conflict = label == 'b' && r.index < o.collisions;
      affs.add({jid, user(owner + 1), std::string(conflict ? "member" : "admin"),
                std::string("Stellvertretung — deputy"), std::string()});
      for (int m = 2; m < 2 + r.index % 6; ++m) {
        affs.add({jid, user(owner + m), std::string("member"), std::string(),
                  std::string(kNicks[static_cast<std::size_t>(owner + m) % kNicks.size()]) + "-" +
                      std::to_string(m)});
      }
      if (r.index % 3 == 0) {
        affs.add({jid, "spammer" + std::to_string(r.index) + "@evil.example",
                  std::string("outcast"), std::string("spam 🚫"), std::string()});
      }
    }
    loader.flush();
    affs.flush();
  }
  Loader archive(db, "tc_archive", tc_columns(storage::columns::kArchiveInsertColumns));
  for (long long n = 0; n < o.messages; ++n) {
    const Room& r = rooms[pick_room(rng, rooms.size(), n)];
    const std::string jid = r.local + "@" + o.domain;
    const std::string nick = kNicks[rng() % kNicks.size()];
    const std::string sender = "user" + std::to_string(1000 + rng() % 9000) + "@" + o.user_domain;
    const std::string sid = base62(rng, 16);
    const long long at = base + n * 37;  // strictly increasing: seq order = time order
    if (n % 97 == 50) {
      archive.add({jid, sid, nick, sender, std::string(n % 2 ? "join" : "leave"),
                   "<presence from=\"" + xml_escape(jid + "/" + nick) + "\"" +
                       (n % 2 ? "" : " type=\"unavailable\"") + "/>",
                   std::to_string(at)});
      continue;
    }
    const std::string body = body_for(rng, n, o.large_every);
    archive.add({jid, sid, nick, sender, std::string("groupchat"),
                 "<message from=\"" + xml_escape(jid + "/" + nick) +
                     "\" type=\"groupchat\" id=\"c" + std::to_string(n) + "\"><body>" +
                     xml_escape(body) +
                     "</body><occupant-id xmlns=\"urn:xmpp:occupant-id:0\" id=\"" +
                     base62(rng, 12) + "\"/><stanza-id xmlns=\"urn:xmpp:sid:0\" id=\"" + sid +
                     "\" by=\"" + xml_escape(jid) + "\"/></message>",
                 std::to_string(at)});
  }
  archive.flush();
  tx.commit();
}

constexpr std::array kVendorDdl = {
    "CREATE TABLE tc_rooms (room_jid VARCHAR(3071) NOT NULL PRIMARY KEY, creator_jid "
    "VARCHAR(3071) NOT NULL, subject VARCHAR(255) NOT NULL, type VARCHAR(32) NOT NULL CHECK (type "
    "IN ('ad-hoc', 'persistent')), config TEXT, spacket TEXT, start_msg_id BIGINT NOT NULL, "
    "next_msg_id BIGINT NOT NULL)",
    "CREATE TABLE tc_users (room_jid VARCHAR(3071) NOT NULL, real_jid VARCHAR(3071) NOT NULL, "
    "role VARCHAR(32) NOT NULL CHECK (role IN ('none', 'hidden', 'visitor', 'participant', "
    "'moderator')), affiliation VARCHAR(32) NOT NULL CHECK (affiliation IN ('none', 'outcast', "
    "'member', 'admin', 'owner')), nick_jid VARCHAR(3071) NOT NULL, reason VARCHAR(255), "
    "initiator_jid VARCHAR(3071))",
    "CREATE TABLE tc_messages (msg_id BIGINT NOT NULL, room_jid VARCHAR(3071) NOT NULL, stamp "
    "TIMESTAMP NOT NULL, msg TEXT NOT NULL)",
    "CREATE TABLE tc_msgarchive (msg_id BIGINT NOT NULL, to_jid VARCHAR(3071) NOT NULL, from_jid "
    "VARCHAR(3071) NOT NULL, nick_jid VARCHAR(3071) NOT NULL, sent_date TIMESTAMP NOT NULL, "
    "subject VARCHAR(255), msg_type CHAR(1) NOT NULL, body_len INTEGER, message_len INTEGER, "
    "body_string VARCHAR(4000), message_string VARCHAR(4000), body_text TEXT, message_text TEXT)",
    "CREATE INDEX tc_msgarchive_to ON tc_msgarchive (to_jid, msg_id)",
    "CREATE INDEX tc_users_room ON tc_users (room_jid)",
};

void fill_vendor(Db& db, char label, const TestdataOptions& o) {
  std::mt19937_64 rng(o.seed * 104729 + static_cast<unsigned>(label));
  const std::string alias = label == 'a' ? o.alias_a : o.alias_b;
  const long long base = 1640995200000LL + (label == 'b' ? 7200000 : 0);  // 2022-01-01
  Transaction tx(db);
  for (const char* ddl : kVendorDdl) {
    db.exec(ddl);
  }
  std::vector<Room> rooms = room_names(label, o);
  std::vector<long long> next_id(rooms.size(), 1);
  Loader users(db, "tc_users",
               {{"room_jid"},
                {"real_jid"},
                {"role"},
                {"affiliation"},
                {"nick_jid"},
                {"reason"},
                {"initiator_jid"}});
  const auto user = [&](int n) { return "user" + std::to_string(n) + "@" + o.user_domain; };
  for (const Room& r : rooms) {
    const std::string jid = r.local + "@" + alias;
    const int owner = r.index % 17;
    users.add({jid, user(owner) + "/jabber_1234", std::string("moderator"), std::string("owner"),
               jid + "/" + kNicks[static_cast<std::size_t>(owner) % kNicks.size()], Value{},
               Value{}});
    // The same user again with a stale lower row: the import keeps the highest affiliation.
    users.add({jid, user(owner), std::string("none"), std::string("member"), jid + "/old", Value{},
               Value{}});
    const bool conflict = label == 'b' && r.index < o.collisions;
    users.add({jid, user(owner + 1), std::string("none"),
               std::string(conflict ? "member" : "admin"), jid + "/deputy",
               std::string("Vertretung"), user(owner)});
    for (int m = 2; m < 2 + r.index % 5; ++m) {
      users.add({jid, user(owner + m), std::string("none"), std::string("member"),
                 jid + "/" + kNicks[static_cast<std::size_t>(m) % kNicks.size()], Value{},
                 Value{}});
    }
    // An occupant row (role, no affiliation): not an affiliation, not imported.
    users.add({jid, user(99) + "/mobile", std::string("participant"), std::string("none"),
               jid + "/visitor", Value{}, Value{}});
    if (r.index % 3 == 0) {
      users.add({jid, "troll@evil.example", std::string("none"), std::string("outcast"),
                 jid + "/troll", std::string("spam 🚫"), user(owner)});
    }
  }
  users.flush();
  Loader archive(db, "tc_msgarchive",
                 {{"msg_id", true},
                  {"to_jid"},
                  {"from_jid"},
                  {"nick_jid"},
                  {"sent_date"},
                  {"subject"},
                  {"msg_type"},
                  {"body_len", true},
                  {"message_len", true},
                  {"body_string"},
                  {"message_string"},
                  {"body_text"},
                  {"message_text"}});
  Loader history(db, "tc_messages", {{"msg_id", true}, {"room_jid"}, {"stamp"}, {"msg"}});
  for (long long n = 0; n < o.messages; ++n) {
    const std::size_t ri = pick_room(rng, rooms.size(), n);
    const Room& r = rooms[ri];
    const std::string jid = r.local + "@" + alias;
    const std::string nick = kNicks[rng() % kNicks.size()];
    const long long id = next_id[ri]++;
    const long long at = base + n * 41;
    const std::string body = body_for(rng, n, o.large_every);
    const std::string stanza = "<message xmlns='jabber:client' from='" +
                               xml_escape(jid + "/" + nick) + "' to='" + xml_escape(jid) +
                               "' type='groupchat' id='m" + std::to_string(n) + "'><body>" +
                               xml_escape(body) + "</body></message>";
    const bool long_body = body.size() > 4000;
    const bool long_stanza = stanza.size() > 4000;
    const bool bare = n % 211 == 100;  // an old row without the stanza (built from the columns)
    archive.add(
        {std::to_string(id), jid,
         "user" + std::to_string(rng() % 300) + "@" + o.user_domain + "/jabber_" + base62(rng, 4),
         jid + "/" + nick, timestamp_text(at), Value{}, std::string("g"),
         std::to_string(body.size()), std::to_string(stanza.size()),
         long_body ? Value{} : Value{body}, long_stanza || bare ? Value{} : Value{stanza},
         long_body ? Value{body} : Value{}, long_stanza && !bare ? Value{stanza} : Value{}});
    if (id % 10 == 0) {
      history.add({std::to_string(id), jid, timestamp_text(at), stanza});
    }
  }
  // A private message row (msg_type 'c'): not groupchat, not imported.
  archive.add({std::string("1"), rooms[0].local + "@" + alias, user(1) + "/x",
               rooms[0].local + "@" + alias + "/pm", timestamp_text(base), Value{},
               std::string("c"), std::string("2"), std::string("10"), std::string("pm"),
               std::string("<message/>"), Value{}, Value{}});
  archive.flush();
  history.flush();
  Loader room_rows(db, "tc_rooms",
                   {{"room_jid"},
                    {"creator_jid"},
                    {"subject"},
                    {"type"},
                    {"config"},
                    {"spacket"},
                    {"start_msg_id", true},
                    {"next_msg_id", true}});
  for (std::size_t i = 0; i < rooms.size(); ++i) {
    const Room& r = rooms[i];
    const std::string jid = r.local + "@" + alias;
    const std::string subject = "Thema " + std::to_string(r.index) + " — " +
                                kSentences[static_cast<std::size_t>(r.index) % kSentences.size()];
    const std::string spacket =
        "<message from='" + xml_escape(jid) + "/" + kNicks[i % kNicks.size()] +
        "' type='groupchat'><subject>" + xml_escape(subject) +
        "</subject><delay xmlns='urn:xmpp:delay' stamp='2022-06-01T10:00:00.000Z'/></message>";
    room_rows.add({jid, user(r.index % 17), subject.substr(0, 200), std::string("persistent"),
                   vendor_config(r, jid), spacket, std::string("1"), std::to_string(next_id[i])});
  }
  // An ad-hoc room: skipped by the import.
  room_rows.add({"adhoc-" + std::string(1, label) + "@" + alias, user(3), std::string(),
                 std::string("ad-hoc"), Value{}, Value{}, std::string("1"), std::string("1")});
  room_rows.flush();
  tx.commit();
}

}  // namespace

int generate_testdata(const TestdataOptions& o, std::FILE* out) {
  if (o.kind != "tc" && o.kind != "vendor") {
    std::fprintf(out, "tc-merge testdata: --kind is tc or vendor\n");
    return 2;
  }
  if (o.rooms <= 0 || o.collisions > o.rooms) {
    std::fprintf(out, "tc-merge testdata: need --rooms > 0 and --collisions <= --rooms\n");
    return 2;
  }
  for (const auto& [label, url] : {std::pair{'a', o.url_a}, std::pair{'b', o.url_b}}) {
    if (o.kind == "tc") {
      auto store = storage::open_store(url);
      if (!store || !(*store)->migrate()) {
        std::fprintf(out, "tc-merge testdata: cannot create the schema in %s\n",
                     storage::redact_url(url).c_str());
        return 2;
      }
    }
    auto db = open_db(url);
    if (o.kind == "tc") {
      if (db->scalar_int("SELECT COUNT(*) FROM tc_rooms") > 0) {
        std::fprintf(out, "tc-merge testdata: %s is not empty\n", db->redacted_url().c_str());
        return 2;
      }
      fill_tc(*db, label, o);
    } else {
      if (db->table_exists("tc_msgarchive")) {
        std::fprintf(out, "tc-merge testdata: %s already has vendor tables\n",
                     db->redacted_url().c_str());
        return 2;
      }
      fill_vendor(*db, label, o);
    }
    std::fprintf(out, "testdata: %s: %d rooms, %lld messages (%s)\n", db->redacted_url().c_str(),
                 o.rooms, o.messages, o.kind.c_str());
  }
  return 0;
}

}  // namespace tc::merge
