// SPDX-License-Identifier: Apache-2.0
// SQLite (SOCI sqlite3 backend) and ODBC (SOCI odbc backend) in one class with a dialect switch.
// Every SOCI exception is caught in guarded() and converted to a storage::Errc.
//
// ODBC: open_store("odbc://<connection string>") passes the connection string to the driver
// manager unchanged except for one key of ours, TcDialect=postgresql|sqlite, which is removed
// first. Without it the dialect comes from the driver's SQL_DBMS_NAME (SOCI's
// get_database_product()); only PostgreSQL and SQLite databases are supported. Examples:
//   odbc://DRIVER=SQLite3;Database=/var/lib/tcbroker/tc.db
//   odbc://DRIVER={PostgreSQL Unicode};Server=db;Port=5432;Database=tc;Uid=tc;Pwd=secret
//   odbc://DSN=tcbroker;TcDialect=postgresql
#include <algorithm>
#include <cctype>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>
#include <spdlog/spdlog.h>
#if defined(TC_WITH_ODBC)
#include <soci/odbc/soci-odbc.h>
#endif

#include "storage/errc.h"

#include "backends.h"
#include "codec.h"
#include "schema/migrations.h"
#include "schema/postgresql_sql.h"

namespace tc::storage {
namespace {

using schema::Dialect;

constexpr int kSqliteBusy = 5;
constexpr int kSqliteLocked = 6;
constexpr int kSqliteIoErr = 10;
constexpr int kSqliteCantOpen = 14;

constexpr const char* kAccountColumns =
    "username, scram_sha1_salt, scram_sha1_iterations, scram_sha1_stored_key, "
    "scram_sha1_server_key, scram_sha256_salt, scram_sha256_iterations, scram_sha256_stored_key, "
    "scram_sha256_server_key, created_at";
constexpr const char* kRoomColumns =
    "jid, config_json, persistent, subject, subject_nick, subject_at, host_node, created_at";
constexpr const char* kArchiveColumns =
    "seq, room_jid, stanza_id, sender_nick, sender_jid, kind, stanza_xml, created_at";
constexpr const char* kLeaseColumns = "partition, holder, epoch, expires_at";

/// Bindable copies of the columns: SOCI binds by reference, so every value needs a name.
struct AccountRow {
  std::string username;
  std::string sha1_salt, sha1_stored, sha1_server;
  long long sha1_iterations = 0;
  std::string sha256_salt, sha256_stored, sha256_server;
  long long sha256_iterations = 0;
  long long created_at = 0;

  static AccountRow from(const AccountRecord& a) {
    AccountRow r;
    r.username = a.username;
    r.sha1_salt = codec::base64_encode(a.scram_sha1.salt);
    r.sha1_iterations = a.scram_sha1.iterations;
    r.sha1_stored = codec::base64_encode(a.scram_sha1.stored_key);
    r.sha1_server = codec::base64_encode(a.scram_sha1.server_key);
    r.sha256_salt = codec::base64_encode(a.scram_sha256.salt);
    r.sha256_iterations = a.scram_sha256.iterations;
    r.sha256_stored = codec::base64_encode(a.scram_sha256.stored_key);
    r.sha256_server = codec::base64_encode(a.scram_sha256.server_key);
    r.created_at = a.created_at;
    return r;
  }

  /// In kAccountColumns order; `into` or `use` alike.
  template <class F>
  void each(F&& f) {
    f(username), f(sha1_salt), f(sha1_iterations), f(sha1_stored), f(sha1_server);
    f(sha256_salt), f(sha256_iterations), f(sha256_stored), f(sha256_server), f(created_at);
  }

  AccountRecord to_record() const {
    const auto decode = [](const std::string& text) {
      auto bytes = codec::base64_decode(text);
      if (!bytes) {
        throw std::runtime_error("tc_accounts holds a value that is not base64");
      }
      return std::move(*bytes);
    };
    AccountRecord a;
    a.username = username;
    a.scram_sha1 = {decode(sha1_salt), static_cast<std::uint32_t>(sha1_iterations),
                    decode(sha1_stored), decode(sha1_server)};
    a.scram_sha256 = {decode(sha256_salt), static_cast<std::uint32_t>(sha256_iterations),
                      decode(sha256_stored), decode(sha256_server)};
    a.created_at = created_at;
    return a;
  }
};

struct RoomRow {
  std::string jid, config_json;
  int persistent = 1;
  std::string subject, subject_nick;
  long long subject_at = 0;
  std::string host_node;
  long long created_at = 0;

  static RoomRow from(const RoomRecord& room) {
    return {room.jid,          room.config_json, room.persistent ? 1 : 0, room.subject,
            room.subject_nick, room.subject_at,  room.host_node,          room.created_at};
  }

  template <class F>
  void each(F&& f) {
    f(jid), f(config_json), f(persistent), f(subject), f(subject_nick), f(subject_at);
    f(host_node), f(created_at);
  }

  RoomRecord to_record() const {
    return {std::nullopt, jid,        config_json, persistent != 0, subject,
            subject_nick, subject_at, host_node,   created_at};
  }
};

struct MessageRow {
  long long seq = 0;
  std::string room_jid, stanza_id, sender_nick, sender_jid, kind, stanza_xml;
  long long created_at = 0;

  template <class F>
  void each(F&& f) {
    f(seq), f(room_jid), f(stanza_id), f(sender_nick), f(sender_jid), f(kind), f(stanza_xml);
    f(created_at);
  }

  ArchivedMessage to_record() const {
    return {seq, room_jid, stanza_id, sender_nick, sender_jid, kind, stanza_xml, created_at};
  }
};

/// A statement built piece by piece: values bound in placeholder order, then run.
///
/// With ODBC, result columns are not bound through SOCI: SOCI 4.0 binds a std::string column with
/// a buffer of the column's declared size, and for TEXT that is 100 MB, allocated and zeroed per
/// column per statement. Instead fetch() reads each column with SQLGetData, in chunks, so a row
/// costs what its data weighs.
class Query {
 public:
  explicit Query(soci::session& sql) : st_(sql), odbc_(sql.get_backend_name() == "odbc") {}

  template <class T>
  Query& into(T& value) {
    if (odbc_) {
      targets_.emplace_back(&value);
    } else {
      st_.exchange(soci::into(value));
    }
    return *this;
  }
  template <class Row>
  Query& into_row(Row& row) {
    row.each([this](auto& v) { into(v); });
    return *this;
  }
  template <class T>
  Query& use(const T& value) {
    st_.exchange(soci::use(value));
    return *this;
  }

  /// Runs a statement that returns no rows; the affected row count.
  long long run(const std::string& text) {
    prepare(text);
    st_.execute(true);
    return st_.get_affected_rows();
  }
  /// Runs the statement run() prepared again, with the bound variables' current values.
  long long rerun() {
    st_.execute(true);
    return st_.get_affected_rows();
  }
  /// Runs a query; call fetch() for each row.
  void start(const std::string& text) {
    prepare(text);
    st_.execute(false);
  }
  /// Runs the query start() prepared again; call fetch() for each row.
  void restart() { st_.execute(false); }
  /// Reads the next row into the into() targets; false at the end.
  bool fetch() {
    if (!odbc_) {
      return st_.fetch();
    }
#if defined(TC_WITH_ODBC)
    SQLHSTMT stmt = static_cast<soci::odbc_statement_backend*>(st_.get_backend())->hstmt_;
    const SQLRETURN rc = SQLFetch(stmt);
    if (rc == SQL_NO_DATA) {
      return false;
    }
    check(stmt, rc, "fetching a row");
    for (std::size_t i = 0; i < targets_.size(); ++i) {
      const auto column = static_cast<SQLUSMALLINT>(i + 1);
      std::visit([&](auto* target) { read_column(stmt, column, *target); }, targets_[i]);
    }
    return true;
#else
    return false;
#endif
  }

 private:
  void prepare(const std::string& text) {
    st_.alloc();
    st_.prepare(text);
    st_.define_and_bind();
  }

#if defined(TC_WITH_ODBC)
  static void check(SQLHSTMT stmt, SQLRETURN rc, const char* what) {
    if (!SQL_SUCCEEDED(rc)) {
      throw soci::odbc_soci_error(SQL_HANDLE_STMT, stmt, what);
    }
  }

  static void read_column(SQLHSTMT stmt, SQLUSMALLINT column, std::string& out) {
    out.clear();
    char buffer[16 * 1024];
    for (;;) {
      SQLLEN length = 0;
      const SQLRETURN rc = SQLGetData(stmt, column, SQL_C_CHAR, buffer, sizeof buffer, &length);
      if (rc == SQL_NO_DATA) {
        return;  // the previous call returned the last piece
      }
      check(stmt, rc, "reading a text column");
      if (length == SQL_NULL_DATA) {
        return;  // every text column is NOT NULL; treat a NULL as empty
      }
      // SQL_SUCCESS_WITH_INFO (01004): the buffer was filled, NUL-terminated, and more remains.
      const bool more = rc == SQL_SUCCESS_WITH_INFO &&
                        (length == SQL_NO_TOTAL || length >= static_cast<SQLLEN>(sizeof buffer));
      out.append(buffer, more ? sizeof buffer - 1 : static_cast<std::size_t>(length));
      if (!more) {
        return;
      }
    }
  }

  template <class Int>
  static void read_column(SQLHSTMT stmt, SQLUSMALLINT column, Int& out) {
    static_assert(std::is_same_v<Int, long long> || std::is_same_v<Int, int>);
    SQLLEN length = 0;
    const SQLSMALLINT type = std::is_same_v<Int, long long> ? SQL_C_SBIGINT : SQL_C_SLONG;
    check(stmt, SQLGetData(stmt, column, type, &out, sizeof out, &length), "reading a number");
    if (length == SQL_NULL_DATA) {
      out = 0;
    }
  }
#endif

  soci::statement st_;
  bool odbc_;
  std::vector<std::variant<std::string*, long long*, int*>> targets_;
};

/// A transaction. SQLite: BEGIN IMMEDIATE for writes so that the write lock is taken (waiting up
/// to busy_timeout) before anything is read; a deferred transaction that read first and then
/// wants to write fails at once with SQLITE_BUSY when the other broker process got in between.
class Transaction {
 public:
  enum class Mode { Read, Write };

  Transaction(soci::session& sql, Dialect dialect, Mode mode)
      : sql_(sql), raw_(dialect == Dialect::Sqlite) {
    if (raw_) {
      sql_ << (mode == Mode::Write ? "BEGIN IMMEDIATE" : "BEGIN");
    } else {
      sql_.begin();
    }
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    if (done_) {
      return;
    }
    try {
      if (raw_) {
        sql_ << "ROLLBACK";
      } else {
        sql_.rollback();
      }
    } catch (const std::exception& e) {
      // The connection is probably gone; the server rolls back by itself.
      spdlog::debug("storage: rollback failed: {}", e.what());
    }
  }

  void commit() {
    if (raw_) {
      sql_ << "COMMIT";
    } else {
      sql_.commit();
    }
    done_ = true;
  }

 private:
  soci::session& sql_;
  bool raw_;
  bool done_ = false;
};

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

std::string short_message(const std::exception& e) {
  // SOCI appends the statement and its bound values; keep logs small and free of stanza bodies.
  std::string text = e.what();
  if (const auto* soci_error = dynamic_cast<const soci::soci_error*>(&e)) {
    text = soci_error->get_error_message();
  }
  if (text.size() > 300) {
    text.resize(300);
    text += "...";
  }
  return text;
}

enum class Flavor { Sqlite, Odbc };

/// The ODBC data source is a DBMS whose SQL we do not speak.
class UnsupportedDatabase : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class SociStore final : public Store {
 public:
  SociStore(Flavor flavor, std::string connect_string, std::string redacted, SqliteOptions options)
      : flavor_(flavor),
        connect_string_(std::move(connect_string)),
        redacted_(std::move(redacted)),
        sqlite_(std::move(options)) {}

  /// Opens the session now and, for ODBC without TcDialect, learns the dialect.
  Result<void> open(std::optional<Dialect> dialect) {
    dialect_ = dialect.value_or(Dialect::Sqlite);
    dialect_known_ = dialect.has_value();
    return guarded("open", [](soci::session&) -> Result<void> { return {}; });
  }

  std::string_view backend() const override {
    if (flavor_ == Flavor::Sqlite) {
      return "sqlite";
    }
    return dialect_ == Dialect::Sqlite ? "odbc-sqlite" : "odbc-postgresql";
  }

  Result<int> schema_version() override {
    return guarded("schema_version", [this](soci::session& sql) -> Result<int> {
      Transaction tx(sql, dialect_, Transaction::Mode::Read);
      return read_version(sql);
    });
  }

  Result<void> migrate() override;

  Result<void> ping() override {
    return guarded("ping", [](soci::session& sql) -> Result<void> {
      int one = 0;
      sql << "SELECT 1", soci::into(one);
      return {};
    });
  }

  Result<void> create_account(const AccountRecord& a) override {
    return guarded("create_account", [this, &a](soci::session& sql) -> Result<void> {
      AccountRow row = AccountRow::from(a);
      Transaction tx(sql, dialect_, Transaction::Mode::Write);
      Query q(sql);
      row.each([&q](auto& v) { q.use(v); });
      q.run(std::string("INSERT INTO tc_accounts (") + kAccountColumns +
            ") VALUES (:u, :s1salt, :s1it, :s1stored, :s1server, :s256salt, :s256it, "
            ":s256stored, :s256server, :created)");
      tx.commit();
      return {};
    });
  }

  Result<AccountRecord> load_account(std::string_view username) override {
    return guarded("load_account", [&](soci::session& sql) -> Result<AccountRecord> {
      const std::string name(username);
      AccountRow row;
      Query q(sql);
      q.into_row(row).use(name).start(std::string("SELECT ") + kAccountColumns +
                                      " FROM tc_accounts WHERE username = :u");
      if (!q.fetch()) {
        return make_error_code(Errc::NotFound);
      }
      return row.to_record();
    });
  }

  Result<void> update_account(const AccountRecord& a) override {
    return guarded("update_account", [this, &a](soci::session& sql) -> Result<void> {
      AccountRow row = AccountRow::from(a);
      Transaction tx(sql, dialect_, Transaction::Mode::Write);
      Query q(sql);
      q.use(row.sha1_salt)
          .use(row.sha1_iterations)
          .use(row.sha1_stored)
          .use(row.sha1_server)
          .use(row.sha256_salt)
          .use(row.sha256_iterations)
          .use(row.sha256_stored)
          .use(row.sha256_server)
          .use(row.created_at)
          .use(row.username);
      const long long n = q.run(
          "UPDATE tc_accounts SET scram_sha1_salt = :a, scram_sha1_iterations = :b, "
          "scram_sha1_stored_key = :c, scram_sha1_server_key = :d, scram_sha256_salt = :e, "
          "scram_sha256_iterations = :f, scram_sha256_stored_key = :g, "
          "scram_sha256_server_key = :h, created_at = :i WHERE username = :u");
      if (n == 0) {
        return make_error_code(Errc::NotFound);
      }
      tx.commit();
      return {};
    });
  }

  Result<void> delete_account(std::string_view username) override {
    return guarded("delete_account", [&](soci::session& sql) -> Result<void> {
      const std::string name(username);
      Transaction tx(sql, dialect_, Transaction::Mode::Write);
      if (Query(sql).use(name).run("DELETE FROM tc_accounts WHERE username = :u") == 0) {
        return make_error_code(Errc::NotFound);
      }
      tx.commit();
      return {};
    });
  }

  Result<std::vector<std::string>> list_accounts() override {
    return guarded("list_accounts", [](soci::session& sql) -> Result<std::vector<std::string>> {
      std::string name;
      Query q(sql);
      q.into(name).start("SELECT username FROM tc_accounts");
      std::vector<std::string> names;
      while (q.fetch()) {
        names.push_back(name);
      }
      std::sort(names.begin(), names.end());
      return names;
    });
  }

  Result<void> upsert_node(const NodeRecord& n) override {
    return guarded("upsert_node", [this, &n](soci::session& sql) -> Result<void> {
      const int running = n.text_conference_running ? 1 : 0;
      const long long at = n.heartbeat_at;
      Transaction tx(sql, dialect_, Transaction::Mode::Write);
      Query(sql)
          .use(n.node)
          .use(running)
          .use(at)
          .use(n.admin_url)
          .use(n.client_endpoint)
          .use(n.srm_endpoint)
          .use(n.state)
          .use(n.reason)
          .use(n.version)
          .run(
              "INSERT INTO tc_nodes (node, text_conference_running, heartbeat_at, admin_url, "
              "client_endpoint, srm_endpoint, state, reason, version) VALUES (:node, :running, "
              ":at, :url, :client, :srm, :state, :reason, :version) ON CONFLICT (node) DO UPDATE "
              "SET text_conference_running = excluded.text_conference_running, "
              "heartbeat_at = excluded.heartbeat_at, admin_url = excluded.admin_url, "
              "client_endpoint = excluded.client_endpoint, srm_endpoint = excluded.srm_endpoint, "
              "state = excluded.state, reason = excluded.reason, version = excluded.version");
      tx.commit();
      return {};
    });
  }

  Result<std::vector<NodeRecord>> list_nodes() override {
    return guarded("list_nodes", [](soci::session& sql) -> Result<std::vector<NodeRecord>> {
      NodeRecord n;
      int running = 0;
      long long at = 0;
      Query q(sql);
      q.into(n.node)
          .into(running)
          .into(at)
          .into(n.admin_url)
          .into(n.client_endpoint)
          .into(n.srm_endpoint)
          .into(n.state)
          .into(n.reason)
          .into(n.version)
          .start(
              "SELECT node, text_conference_running, heartbeat_at, admin_url, client_endpoint, "
              "srm_endpoint, state, reason, version FROM tc_nodes");
      std::vector<NodeRecord> out;
      while (q.fetch()) {
        n.text_conference_running = running != 0;
        n.heartbeat_at = at;
        out.push_back(n);
      }
      std::sort(out.begin(), out.end(),
                [](const NodeRecord& a, const NodeRecord& b) { return a.node < b.node; });
      return out;
    });
  }

  Result<void> save_room(const RoomRecord& room) override {
    return guarded("save_room", [this, &room](soci::session& sql) -> Result<void> {
      RoomRow row = RoomRow::from(room);
      Transaction tx(sql, dialect_, Transaction::Mode::Write);
      if (room.fence && !holds_fence(sql, *room.fence)) {
        return make_error_code(Errc::StaleEpoch);
      }
      Query q(sql);
      row.each([&q](auto& v) { q.use(v); });
      // ON CONFLICT ... DO UPDATE: PostgreSQL 9.5+, SQLite 3.24+.
      q.run(std::string("INSERT INTO tc_rooms (") + kRoomColumns +
            ") VALUES (:jid, :config, :persistent, :subject, :subject_nick, :subject_at, "
            ":host_node, :created_at) ON CONFLICT (jid) DO UPDATE SET "
            "config_json = excluded.config_json, persistent = excluded.persistent, "
            "subject = excluded.subject, subject_nick = excluded.subject_nick, "
            "subject_at = excluded.subject_at, host_node = excluded.host_node, "
            "created_at = excluded.created_at");
      tx.commit();
      return {};
    });
  }

  Result<RoomRecord> load_room(std::string_view room_jid) override {
    return guarded("load_room", [&](soci::session& sql) -> Result<RoomRecord> {
      const std::string jid(room_jid);
      RoomRow row;
      Query q(sql);
      q.into_row(row).use(jid).start(std::string("SELECT ") + kRoomColumns +
                                     " FROM tc_rooms WHERE jid = :jid");
      if (!q.fetch()) {
        return make_error_code(Errc::NotFound);
      }
      return row.to_record();
    });
  }

  Result<std::vector<RoomRecord>> list_rooms(std::string_view host_node) override {
    return guarded("list_rooms", [&](soci::session& sql) -> Result<std::vector<RoomRecord>> {
      const std::string host(host_node);
      RoomRow row;
      Query q(sql);
      q.into_row(row);
      if (host.empty()) {
        q.start(std::string("SELECT ") + kRoomColumns + " FROM tc_rooms");
      } else {
        q.use(host).start(std::string("SELECT ") + kRoomColumns +
                          " FROM tc_rooms WHERE host_node = :host");
      }
      std::vector<RoomRecord> rooms;
      while (q.fetch()) {
        rooms.push_back(row.to_record());
      }
      std::sort(rooms.begin(), rooms.end(),
                [](const RoomRecord& a, const RoomRecord& b) { return a.jid < b.jid; });
      return rooms;
    });
  }

  Result<void> delete_room(std::string_view room_jid, const Fence* fence) override {
    return guarded("delete_room", [&](soci::session& sql) -> Result<void> {
      const std::string jid(room_jid);
      Transaction tx(sql, dialect_, Transaction::Mode::Write);
      if (fence != nullptr && !holds_fence(sql, *fence)) {
        return make_error_code(Errc::StaleEpoch);
      }
      if (Query(sql).use(jid).run("DELETE FROM tc_rooms WHERE jid = :jid") == 0) {
        return make_error_code(Errc::NotFound);  // rolled back: nothing else is touched
      }
      Query(sql).use(jid).run("DELETE FROM tc_room_affiliations WHERE room_jid = :jid");
      Query(sql).use(jid).run("DELETE FROM tc_archive WHERE room_jid = :jid");
      tx.commit();
      return {};
    });
  }

  Result<void> set_affiliation(const AffiliationRecord& r) override {
    return guarded("set_affiliation", [this, &r](soci::session& sql) -> Result<void> {
      const std::string affiliation(codec::affiliation_text(r.affiliation));
      Transaction tx(sql, dialect_, Transaction::Mode::Write);
      if (r.fence && !holds_fence(sql, *r.fence)) {
        return make_error_code(Errc::StaleEpoch);
      }
      if (r.affiliation == Affiliation::None) {
        Query(sql)
            .use(r.room_jid)
            .use(r.user_jid)
            .run("DELETE FROM tc_room_affiliations WHERE room_jid = :room AND user_jid = :user");
      } else {
        Query(sql)
            .use(r.room_jid)
            .use(r.user_jid)
            .use(affiliation)
            .use(r.reason)
            .use(r.nick)
            .run(
                "INSERT INTO tc_room_affiliations (room_jid, user_jid, affiliation, reason, "
                "nick) VALUES (:room, :user, :affiliation, :reason, :nick) ON CONFLICT "
                "(room_jid, user_jid) DO UPDATE SET affiliation = excluded.affiliation, "
                "reason = excluded.reason, nick = excluded.nick");
      }
      tx.commit();
      return {};
    });
  }

  Result<std::vector<AffiliationRecord>> load_affiliations(std::string_view room_jid) override {
    return guarded(
        "load_affiliations", [&](soci::session& sql) -> Result<std::vector<AffiliationRecord>> {
          const std::string jid(room_jid);
          std::string user, affiliation, reason, nick;
          Query q(sql);
          q.into(user)
              .into(affiliation)
              .into(reason)
              .into(nick)
              .use(jid)
              .start(
                  "SELECT user_jid, affiliation, reason, nick FROM tc_room_affiliations "
                  "WHERE room_jid = :room");
          std::vector<AffiliationRecord> out;
          while (q.fetch()) {
            const auto aff = codec::parse_affiliation(affiliation);
            if (!aff) {
              throw std::runtime_error("unknown affiliation " + affiliation);
            }
            out.push_back({std::nullopt, jid, user, *aff, reason, nick});
          }
          std::sort(out.begin(), out.end(),
                    [](const auto& a, const auto& b) { return a.user_jid < b.user_jid; });
          return out;
        });
  }

  Result<std::vector<std::int64_t>> append_messages(std::span<const NewMessage> batch) override {
    if (batch.empty()) {
      return std::vector<std::int64_t>{};
    }
    return guarded("append_messages",
                   [this, batch](soci::session& sql) -> Result<std::vector<std::int64_t>> {
                     std::vector<std::int64_t> seqs;
                     seqs.reserve(batch.size());
                     // Group commit: one transaction (one fsync) for the whole batch.
                     Transaction tx(sql, dialect_, Transaction::Mode::Write);
                     if (!holds_fences(sql, batch)) {
                       return make_error_code(Errc::StaleEpoch);
                     }
                     MessageRow row;
                     Query insert(sql);
                     insert.use(row.room_jid)
                         .use(row.stanza_id)
                         .use(row.sender_nick)
                         .use(row.sender_jid)
                         .use(row.kind)
                         .use(row.stanza_xml)
                         .use(row.created_at);
                     std::string text =
                         "INSERT INTO tc_archive (room_jid, stanza_id, sender_nick, sender_jid, "
                         "kind, stanza_xml, created_at) VALUES (:room, :id, :nick, :jid, :kind, "
                         ":xml, :created)";
                     if (dialect_ == Dialect::Postgresql) {
                       insert.into(row.seq);
                       text += " RETURNING seq";
                     }
                     bool first = true;
                     for (const NewMessage& m : batch) {
                       row.room_jid = m.room_jid;
                       row.stanza_id = m.stanza_id;
                       row.sender_nick = m.sender_nick;
                       row.sender_jid = m.sender_jid;
                       row.kind = m.kind;
                       row.stanza_xml = m.stanza_xml;
                       row.created_at = m.created_at;
                       // The statement is prepared once and executed per message.
                       if (dialect_ == Dialect::Postgresql) {
                         if (first) {
                           insert.start(text);
                         } else {
                           insert.restart();
                         }
                         if (!insert.fetch()) {
                           throw std::runtime_error("INSERT ... RETURNING returned no row");
                         }
                       } else {
                         if (first) {
                           insert.run(text);
                         } else {
                           insert.rerun();
                         }
                         sql << "SELECT last_insert_rowid()", soci::into(row.seq);
                       }
                       first = false;
                       seqs.push_back(row.seq);
                     }
                     tx.commit();
                     return seqs;
                   });
  }

  Result<ArchivePage> query_archive(const ArchiveQuery& query) override;

  Result<std::vector<ArchivedMessage>> recent_messages(std::string_view room_jid,
                                                       std::size_t max) override {
    return guarded(
        "recent_messages", [&](soci::session& sql) -> Result<std::vector<ArchivedMessage>> {
          const std::string jid(room_jid);
          const long long limit = static_cast<long long>(max);
          MessageRow row;
          Query q(sql);
          q.into_row(row).use(jid).use(limit).start(
              std::string("SELECT ") + kArchiveColumns + " FROM tc_archive" + archive_index_hint() +
              " WHERE room_jid = :room AND kind NOT IN ('join', 'leave') "
              "ORDER BY seq DESC LIMIT :lim");
          std::vector<ArchivedMessage> out;
          while (q.fetch()) {
            out.push_back(row.to_record());
          }
          std::reverse(out.begin(), out.end());
          return out;
        });
  }

  Result<std::uint64_t> purge_archive(std::string_view room_jid, UnixMillis before) override {
    return guarded("purge_archive", [&](soci::session& sql) -> Result<std::uint64_t> {
      const std::string jid(room_jid);
      const long long cutoff = before;
      Transaction tx(sql, dialect_, Transaction::Mode::Write);
      long long n = 0;
      if (jid.empty()) {
        n = Query(sql).use(cutoff).run("DELETE FROM tc_archive WHERE created_at < :before");
      } else {
        n = Query(sql).use(jid).use(cutoff).run(
            "DELETE FROM tc_archive WHERE room_jid = :room AND created_at < :before");
      }
      tx.commit();
      return static_cast<std::uint64_t>(n);
    });
  }

  Result<std::uint64_t> count_messages(std::string_view room_jid) override {
    return guarded("count_messages", [&](soci::session& sql) -> Result<std::uint64_t> {
      const std::string jid(room_jid);
      long long n = 0;
      Query q(sql);
      q.into(n);
      if (jid.empty()) {
        q.start("SELECT COUNT(*) FROM tc_archive");
      } else {
        q.use(jid).start("SELECT COUNT(*) FROM tc_archive WHERE room_jid = :room");
      }
      q.fetch();
      return static_cast<std::uint64_t>(n);
    });
  }

  // ---- HA ----

  Result<UnixMillis> db_now() override {
    return guarded("db_now",
                   [this](soci::session& sql) -> Result<UnixMillis> { return read_now(sql); });
  }

  Result<LeaseRecord> read_lease(std::string_view partition) override {
    return guarded("read_lease", [&](soci::session& sql) -> Result<LeaseRecord> {
      const std::string part(partition);
      LeaseRecord lease;
      long long epoch = 0, expires = 0, now = 0;
      Query q(sql);
      q.into(lease.partition)
          .into(lease.holder)
          .into(epoch)
          .into(expires)
          .into(now)
          .use(part)
          .start(std::string("SELECT ") + kLeaseColumns + ", " + now_sql() +
                 " FROM tc_leases WHERE partition = :p");
      if (!q.fetch()) {
        return make_error_code(Errc::NotFound);
      }
      lease.epoch = epoch;
      lease.expires_at = expires;
      lease.db_now = now;
      return lease;
    });
  }

  Result<std::vector<LeaseRecord>> list_leases() override {
    return guarded("list_leases", [this](soci::session& sql) -> Result<std::vector<LeaseRecord>> {
      const UnixMillis now = read_now(sql);
      LeaseRecord lease;
      long long epoch = 0, expires = 0;
      Query q(sql);
      q.into(lease.partition)
          .into(lease.holder)
          .into(epoch)
          .into(expires)
          .start(std::string("SELECT ") + kLeaseColumns + " FROM tc_leases");
      std::vector<LeaseRecord> out;
      while (q.fetch()) {
        lease.epoch = epoch;
        lease.expires_at = expires;
        lease.db_now = now;
        out.push_back(lease);
      }
      std::sort(out.begin(), out.end(), [](const LeaseRecord& a, const LeaseRecord& b) {
        return a.partition < b.partition;
      });
      return out;
    });
  }

  Result<LeaseRecord> acquire_lease(std::string_view partition, std::string_view node,
                                    std::int64_t ttl_ms) override {
    return guarded("acquire_lease", [&](soci::session& sql) -> Result<LeaseRecord> {
      const std::string part(partition);
      const std::string holder(node);
      const long long ttl = ttl_ms;
      // SQLite: BEGIN IMMEDIATE holds the write lock for the whole decision. PostgreSQL: the
      // insert waits for a concurrent inserter of the same partition, and FOR UPDATE locks
      // the row, so a second acquirer decides on the winner's committed row.
      Transaction tx(sql, dialect_, Transaction::Mode::Write);
      const long long inserted = Query(sql).use(part).use(holder).use(ttl).run(
          "INSERT INTO tc_leases (partition, holder, epoch, expires_at) VALUES (:p, :h, 1, " +
          now_sql() + " + :ttl) ON CONFLICT (partition) DO NOTHING");
      LeaseRecord lease;
      if (!lock_lease(sql, part, lease)) {
        throw std::runtime_error("tc_leases row vanished inside its transaction");
      }
      if (inserted != 0) {
        lease.db_now = lease.expires_at - ttl;  // the clock reading the insert used
      } else {
        lease.db_now = read_now(sql);
        if (lease.holder != holder && lease.expires_at > lease.db_now) {
          return make_error_code(Errc::AlreadyExists);
        }
        const long long epoch = lease.holder == holder ? lease.epoch : lease.epoch + 1;
        const long long expires = lease.db_now + ttl;
        const long long old_epoch = lease.epoch;
        const long long n = Query(sql)
                                .use(holder)
                                .use(epoch)
                                .use(expires)
                                .use(part)
                                .use(lease.holder)
                                .use(old_epoch)
                                .run(
                                    "UPDATE tc_leases SET holder = :h, epoch = :e, expires_at = "
                                    ":x WHERE partition = :p AND holder = :oh AND epoch = :oe");
        if (n != 1) {
          return make_error_code(Errc::AlreadyExists);  // cannot happen under the row lock
        }
        lease.holder = holder;
        lease.epoch = epoch;
        lease.expires_at = expires;
      }
      tx.commit();
      return lease;
    });
  }

  Result<LeaseRecord> renew_lease(const Fence& fence, std::int64_t ttl_ms) override {
    return guarded("renew_lease", [&](soci::session& sql) -> Result<LeaseRecord> {
      const long long ttl = ttl_ms;
      const long long epoch = fence.epoch;
      Transaction tx(sql, dialect_, Transaction::Mode::Write);
      const long long n = Query(sql)
                              .use(ttl)
                              .use(fence.partition)
                              .use(fence.holder)
                              .use(epoch)
                              .run("UPDATE tc_leases SET expires_at = " + now_sql() +
                                   " + :ttl WHERE partition = :p AND holder = :h AND epoch = :e");
      if (n == 0) {
        return make_error_code(Errc::StaleEpoch);
      }
      LeaseRecord lease;
      lock_lease(sql, fence.partition, lease);
      lease.db_now = lease.expires_at - ttl;
      tx.commit();
      return lease;
    });
  }

  Result<LeaseRecord> transfer_lease(const Fence& fence, std::string_view to,
                                     std::int64_t ttl_ms) override {
    return guarded("transfer_lease", [&](soci::session& sql) -> Result<LeaseRecord> {
      const std::string holder(to);
      const long long ttl = ttl_ms;
      const long long epoch = fence.epoch;
      Transaction tx(sql, dialect_, Transaction::Mode::Write);
      const long long n =
          Query(sql)
              .use(holder)
              .use(ttl)
              .use(fence.partition)
              .use(fence.holder)
              .use(epoch)
              .run("UPDATE tc_leases SET holder = :to, epoch = epoch + 1, expires_at = " +
                   now_sql() + " + :ttl WHERE partition = :p AND holder = :h AND epoch = :e");
      if (n == 0) {
        return make_error_code(Errc::StaleEpoch);
      }
      LeaseRecord lease;
      lock_lease(sql, fence.partition, lease);
      lease.db_now = lease.expires_at - ttl;
      tx.commit();
      return lease;
    });
  }

  Result<void> release_lease(const Fence& fence) override {
    return guarded("release_lease", [&](soci::session& sql) -> Result<void> {
      const long long epoch = fence.epoch;
      Transaction tx(sql, dialect_, Transaction::Mode::Write);
      const long long n = Query(sql)
                              .use(fence.partition)
                              .use(fence.holder)
                              .use(epoch)
                              .run("UPDATE tc_leases SET expires_at = " + now_sql() +
                                   " WHERE partition = :p AND holder = :h AND epoch = :e");
      if (n == 0) {
        return make_error_code(Errc::StaleEpoch);
      }
      tx.commit();
      return {};
    });
  }

  Result<std::vector<std::pair<std::string, std::string>>> list_settings() override {
    using Settings = std::vector<std::pair<std::string, std::string>>;
    return guarded("list_settings", [](soci::session& sql) -> Result<Settings> {
      std::string key, value;
      Query q(sql);
      q.into(key).into(value).start("SELECT key, value FROM tc_settings");
      Settings out;
      while (q.fetch()) {
        out.emplace_back(key, value);
      }
      std::sort(out.begin(), out.end());
      return out;
    });
  }

  Result<void> set_setting(std::string_view key, std::string_view value) override {
    return guarded("set_setting", [&](soci::session& sql) -> Result<void> {
      const std::string k(key), v(value);
      Transaction tx(sql, dialect_, Transaction::Mode::Write);
      Query(sql).use(k).use(v).run(
          "INSERT INTO tc_settings (key, value) VALUES (:k, :v) ON CONFLICT (key) DO UPDATE "
          "SET value = excluded.value");
      tx.commit();
      return {};
    });
  }

  Result<void> delete_setting(std::string_view key) override {
    return guarded("delete_setting", [&](soci::session& sql) -> Result<void> {
      const std::string k(key);
      Transaction tx(sql, dialect_, Transaction::Mode::Write);
      if (Query(sql).use(k).run("DELETE FROM tc_settings WHERE key = :k") == 0) {
        return make_error_code(Errc::NotFound);
      }
      tx.commit();
      return {};
    });
  }

  Result<void> save_group(const GroupRecord& g) override {
    return guarded("save_group", [this, &g](soci::session& sql) -> Result<void> {
      const int ha = g.ha_enabled ? 1 : 0;
      Transaction tx(sql, dialect_, Transaction::Mode::Write);
      Query(sql)
          .use(g.name)
          .use(g.description)
          .use(ha)
          .run(
              "INSERT INTO tc_groups (name, description, ha_enabled) VALUES (:n, :d, :ha) "
              "ON CONFLICT (name) DO UPDATE SET description = excluded.description, "
              "ha_enabled = excluded.ha_enabled");
      Query(sql).use(g.name).run("DELETE FROM tc_group_nodes WHERE group_name = :n");
      // A node of another group violates tc_group_nodes' key: AlreadyExists, all rolled back.
      for (std::size_t i = 0; i < g.nodes.size(); ++i) {
        const int position = static_cast<int>(i);
        Query(sql)
            .use(g.nodes[i])
            .use(g.name)
            .use(position)
            .run(
                "INSERT INTO tc_group_nodes (node, group_name, position) VALUES (:node, :n, :pos)");
      }
      tx.commit();
      return {};
    });
  }

  Result<std::vector<GroupRecord>> list_groups() override {
    return guarded("list_groups", [](soci::session& sql) -> Result<std::vector<GroupRecord>> {
      std::vector<GroupRecord> out;
      {
        GroupRecord g;
        int ha = 0;
        Query q(sql);
        q.into(g.name)
            .into(g.description)
            .into(ha)
            .start("SELECT name, description, ha_enabled FROM tc_groups");
        while (q.fetch()) {
          g.ha_enabled = ha != 0;
          out.push_back(g);
        }
      }
      std::sort(out.begin(), out.end(),
                [](const GroupRecord& a, const GroupRecord& b) { return a.name < b.name; });
      std::string name, node;
      Query q(sql);
      q.into(name).into(node).start(
          "SELECT group_name, node FROM tc_group_nodes ORDER BY group_name, position");
      while (q.fetch()) {
        const auto it =
            std::lower_bound(out.begin(), out.end(), name,
                             [](const GroupRecord& g, const std::string& n) { return g.name < n; });
        if (it != out.end() && it->name == name) {
          it->nodes.push_back(node);
        }
      }
      return out;
    });
  }

  Result<void> delete_group(std::string_view name) override {
    return guarded("delete_group", [&](soci::session& sql) -> Result<void> {
      const std::string group(name);
      Transaction tx(sql, dialect_, Transaction::Mode::Write);
      if (Query(sql).use(group).run("DELETE FROM tc_groups WHERE name = :n") == 0) {
        return make_error_code(Errc::NotFound);
      }
      Query(sql).use(group).run("DELETE FROM tc_group_nodes WHERE group_name = :n");
      tx.commit();
      return {};
    });
  }

 private:
  /// The database clock in Unix milliseconds, as SQL of this dialect.
  std::string now_sql() const { return std::string(schema::now_millis_expression(dialect_)); }

  long long read_now(soci::session& sql) const {
    long long now = 0;
    Query q(sql);
    q.into(now).start("SELECT " + now_sql());
    if (!q.fetch()) {
      throw std::runtime_error("the database clock query returned no row");
    }
    return now;
  }

  /// Reads the lease row of `partition` into `lease` (db_now untouched), locking it for the
  /// transaction on PostgreSQL (SQLite's write transaction holds the whole database). False
  /// when there is no row.
  bool lock_lease(soci::session& sql, const std::string& partition, LeaseRecord& lease) const {
    long long epoch = 0, expires = 0;
    Query q(sql);
    q.into(lease.partition)
        .into(lease.holder)
        .into(epoch)
        .into(expires)
        .use(partition)
        .start(std::string("SELECT ") + kLeaseColumns + " FROM tc_leases WHERE partition = :p" +
               (dialect_ == Dialect::Postgresql ? " FOR UPDATE" : ""));
    if (!q.fetch()) {
      return false;
    }
    lease.epoch = epoch;
    lease.expires_at = expires;
    return true;
  }

  /// Whether the lease row still names `fence`'s holder at its epoch; run inside the write's
  /// own transaction. PostgreSQL: FOR SHARE keeps the row until the write commits, so a
  /// takeover (an UPDATE of the row) serialises after it. SQLite: the write transaction
  /// (BEGIN IMMEDIATE) already excludes every other writer. Expiry is not checked: only an
  /// epoch bump fences a writer.
  bool holds_fence(soci::session& sql, const Fence& fence) const {
    const long long epoch = fence.epoch;
    int one = 0;
    Query q(sql);
    q.into(one)
        .use(fence.partition)
        .use(fence.holder)
        .use(epoch)
        .start(std::string("SELECT 1 FROM tc_leases WHERE partition = :p AND holder = :h AND "
                           "epoch = :e") +
               (dialect_ == Dialect::Postgresql ? " FOR SHARE" : ""));
    return q.fetch();
  }

  /// holds_fence() for each distinct fence of the batch.
  bool holds_fences(soci::session& sql, std::span<const NewMessage> batch) const {
    std::vector<const Fence*> checked;
    for (const NewMessage& m : batch) {
      if (!m.fence || std::any_of(checked.begin(), checked.end(), [&m](const Fence* f) {
            return f->partition == m.fence->partition && f->holder == m.fence->holder &&
                   f->epoch == m.fence->epoch;
          })) {
        continue;
      }
      if (!holds_fence(sql, *m.fence)) {
        return false;
      }
      checked.push_back(&*m.fence);
    }
    return true;
  }

  /// Without ANALYZE statistics SQLite may walk the rowid (seq) range of every room instead of
  /// the (room_jid, seq) index; pin the index so paging stays one range scan per room.
  std::string archive_index_hint() const {
    return dialect_ == Dialect::Sqlite ? " INDEXED BY tc_archive_room_seq" : "";
  }

  /// The values of archive_filter(), named so SOCI can bind them by reference.
  struct FilterValues {
    std::string room;
    long long after = 0;
    long long before = 0;
    long long start = 0;
    long long end = 0;
    std::string nick;
    int presence = 0;
  };

  static FilterValues filter_values(const ArchiveQuery& query, const codec::ArchiveBounds& b) {
    return {query.room_jid,
            b.after_seq,
            b.before_seq,
            b.start,
            b.end,
            query.with_nick,
            query.include_presence ? 1 : 0};
  }

  /// The WHERE clause of query_archive's page and count. Placeholders are written :name for
  /// SOCI, each name once: values are bound by position (bind_filter()), and SQLite gives a
  /// repeated name a single slot. CAST() rather than ::type keeps the text valid in both
  /// dialects. PostgreSQL gets row comparisons, which only the (room_jid, seq) index can serve
  /// (see pg_store.cpp); SQLite plans them badly and is pinned by INDEXED BY instead.
  std::string archive_filter() const {
    const char* seq_range = dialect_ == Dialect::Postgresql
                                ? " AND (room_jid, seq) > (:room2, :after)"
                                  " AND (room_jid, seq) < (:room3, :before)"
                                : " AND seq > :after AND seq < :before";
    return std::string(" WHERE room_jid = :room") + seq_range +
           " AND created_at >= :start AND created_at <= :end"
           " AND (CAST(:nick1 AS TEXT) = '' OR sender_nick = :nick2)"
           " AND (CAST(:presence AS INTEGER) = 1 OR kind NOT IN ('join', 'leave'))";
  }

  void bind_filter(Query& q, const FilterValues& v) const {
    q.use(v.room);
    if (dialect_ == Dialect::Postgresql) {
      q.use(v.room).use(v.after).use(v.room).use(v.before);
    } else {
      q.use(v.after).use(v.before);
    }
    q.use(v.start).use(v.end).use(v.nick).use(v.nick).use(v.presence);
  }

  int read_version(soci::session& sql) const {
    long long tables = 0;
    if (dialect_ == Dialect::Sqlite) {
      sql << "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND "
             "name = 'tc_schema_version'",
          soci::into(tables);
    } else {
      sql << "SELECT COUNT(*) FROM information_schema.tables WHERE "
             "table_schema = current_schema() AND table_name = 'tc_schema_version'",
          soci::into(tables);
    }
    if (tables == 0) {
      return 0;
    }
    int version = 0;
    sql << "SELECT COALESCE(MAX(version), 0) FROM tc_schema_version", soci::into(version);
    return version;
  }

  Result<void> migrate_once();

  /// Opens the session if there is none (first use, or after a lost ODBC connection).
  soci::session& session() {
    if (!sql_) {
      auto sql = std::make_unique<soci::session>();
      if (flavor_ == Flavor::Sqlite) {
        // SOCI's sqlite3 backend reads "key=value" pairs; quotes allow spaces in the path.
        sql->open(soci::sqlite3, "db=\"" + sqlite_.path + "\"");
      } else {
#if defined(TC_WITH_ODBC)
        sql->open(soci::odbc, connect_string_);
        if (!dialect_known_) {
          dialect_ = detect_dialect(*sql);
          dialect_known_ = true;
        }
#else
        throw std::logic_error("ODBC backend not built in");
#endif
      }
      if (dialect_ == Dialect::Sqlite) {
        configure_sqlite(*sql);
      }
      sql_ = std::move(sql);
      if (reconnecting_) {
        spdlog::info("storage: reconnected to {}", redacted_);
        reconnecting_ = false;
      }
    }
    return *sql_;
  }

#if defined(TC_WITH_ODBC)
  Dialect detect_dialect(soci::session& sql) const {
    // The session was opened with soci::odbc, so this is its backend. (static_cast: SOCI does
    // not export the class's typeinfo, so dynamic_cast would not link.)
    const auto product =
        static_cast<soci::odbc_session_backend*>(sql.get_backend())->get_database_product();
    if (product == soci::odbc_session_backend::prod_postgresql) {
      return Dialect::Postgresql;
    }
    if (product == soci::odbc_session_backend::prod_sqlite) {
      return Dialect::Sqlite;
    }
    throw UnsupportedDatabase(
        "the ODBC data source is neither PostgreSQL nor SQLite; add TcDialect=postgresql or "
        "TcDialect=sqlite if it speaks one of those");
  }
#endif

  /// Two broker processes share one SQLite file: WAL lets readers run beside the single writer,
  /// busy_timeout makes a writer wait for the other process instead of failing at once.
  void configure_sqlite(soci::session& sql) {
    if (flavor_ == Flavor::Sqlite) {
      // SQLite's own busy handler backs off to 100 ms sleeps, and a waiter that sleeps loses
      // the lock to whoever asks meanwhile: under a write burst of the other node (or of this
      // node's room store) a short transaction such as an SRM lease renewal could wait for
      // seconds. Polling every 0.5 ms keeps the wait close to the lock's real holding
      // time. Same limit as busy_timeout.
      auto* backend = static_cast<soci::sqlite3_session_backend*>(sql.get_backend());
      busy_.timeout = std::chrono::milliseconds(sqlite_.busy_timeout_ms);
      sqlite3_busy_handler(backend->conn_, &SociStore::on_busy, &busy_);
    } else {
      sql << "PRAGMA busy_timeout = " + std::to_string(sqlite_.busy_timeout_ms);
    }
    std::string mode;
    Query wal(sql);
    wal.into(mode).start("PRAGMA journal_mode = WAL");
    wal.fetch();
    std::transform(mode.begin(), mode.end(), mode.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (mode != "wal" && mode != "memory") {
      spdlog::warn(
          "storage: {} stays in journal_mode={}, not WAL; the two nodes will block each "
          "other",
          redacted_, mode);
    }
    // See SqliteOptions::synchronous_full for the durability trade-off.
    sql << (sqlite_.synchronous_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
    sql << "PRAGMA foreign_keys = ON";
  }

  /// Runs `body` on the session and converts every exception. A lost ODBC connection is
  /// replaced; a connection that broke while idle is retried once (nothing was committed on it).
  template <class F>
  auto guarded(std::string_view op, F&& body) -> decltype(body(std::declval<soci::session&>())) {
    using R = decltype(body(std::declval<soci::session&>()));
    for (int attempt = 0;; ++attempt) {
      const bool reused = sql_ != nullptr;
      try {
        return body(session());
      } catch (const UnsupportedDatabase& e) {
        spdlog::error("storage: {}: {}", redacted_, e.what());
        return R(make_error_code(Errc::Unsupported));
      } catch (const std::exception& e) {
        const std::string message = short_message(e);
        const Errc errc = classify(e, message);
        if (errc == Errc::Unavailable && flavor_ == Flavor::Odbc && is_connection_error(e)) {
          if (!reconnecting_) {
            spdlog::warn("storage: {} on {}: connection lost: {}", op, redacted_, message);
          }
          reconnecting_ = true;
          sql_.reset();
          if (reused && attempt == 0) {
            continue;
          }
        } else if (errc == Errc::AlreadyExists) {
          spdlog::debug("storage: {}: {}", op, message);
        } else {
          spdlog::warn("storage: {} on {} failed: {}", op, redacted_, message);
        }
        if (!sql_ && errc != Errc::Unavailable) {
          return R(make_error_code(Errc::Unavailable));  // could not even open
        }
        return R(make_error_code(errc));
      }
    }
  }

  /// The connection is gone (not just this statement failed). SOCI classifies SQLSTATE 08xxx;
  /// psqlODBC reports the first failure on a dead socket as HY000 with libpq's message.
  static bool is_connection_error(const std::exception& e) {
    const auto* soci_error = dynamic_cast<const soci::soci_error*>(&e);
    if (soci_error == nullptr) {
      return false;
    }
    if (soci_error->get_error_category() == soci::soci_error::connection_error) {
      return true;
    }
    const std::string message = soci_error->get_error_message();
    for (const std::string_view phrase :
         {"server closed the connection", "connection lost", "no connection to the server",
          "terminating connection", "could not connect", "Connection refused",
          "could not send data", "could not receive data", "(SQL state 08", "(SQL state 57P0"}) {
      if (contains(message, phrase)) {
        return true;
      }
    }
    return false;
  }

  static Errc classify(const std::exception& e, std::string_view message) {
    if (contains(message, "UNIQUE constraint failed") || contains(message, "duplicate key") ||
        contains(message, "23505")) {
      return Errc::AlreadyExists;
    }
    if (const auto* lite = dynamic_cast<const soci::sqlite3_soci_error*>(&e)) {
      switch (lite->result() & 0xff) {
        case kSqliteBusy:
        case kSqliteLocked:
        case kSqliteIoErr:
        case kSqliteCantOpen:
          return Errc::Unavailable;
        default:
          return Errc::QueryFailed;
      }
    }
    if (is_connection_error(e) || contains(message, "database is locked") ||
        contains(message, "Cannot establish connection")) {
      return Errc::Unavailable;
    }
    return Errc::QueryFailed;
  }

  struct BusyWait {
    std::chrono::milliseconds timeout{0};
    std::chrono::steady_clock::time_point since{};
  };
  /// sqlite3_busy_handler callback: `count` is 0 on the first retry of one lock wait.
  static int on_busy(void* arg, int count) {
    auto* wait = static_cast<BusyWait*>(arg);
    const auto now = std::chrono::steady_clock::now();
    if (count == 0) {
      wait->since = now;
    } else if (now - wait->since >= wait->timeout) {
      return 0;  // SQLITE_BUSY to the caller: "database is locked"
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
    return 1;
  }

  Flavor flavor_;
  std::string connect_string_;  // ODBC only
  std::string redacted_;
  SqliteOptions sqlite_;
  BusyWait busy_;
  Dialect dialect_ = Dialect::Sqlite;
  bool dialect_known_ = true;
  std::unique_ptr<soci::session> sql_;
  bool reconnecting_ = false;
};

Result<ArchivePage> SociStore::query_archive(const ArchiveQuery& query) {
  return guarded("query_archive", [&](soci::session& sql) -> Result<ArchivePage> {
    codec::ArchiveBounds b = codec::archive_bounds(query);
    // One read transaction: the cursors, the page and the count see the same snapshot.
    Transaction tx(sql, dialect_, Transaction::Mode::Read);
    const auto seq_of = [&](const std::string& text, const auto& value) {
      long long seq = 0;
      Query q(sql);
      q.into(seq).use(query.room_jid).use(value).start(text);
      return q.fetch() ? std::optional<std::int64_t>{seq} : std::nullopt;
    };
    const std::string by_id =
        "SELECT seq FROM tc_archive WHERE room_jid = :room AND stanza_id = :id";
    if (query.after_id) {
      const auto seq = seq_of(by_id, *query.after_id);
      if (!seq) {
        return make_error_code(Errc::NotFound);
      }
      b.after_seq = *seq;
    }
    if (query.before_id && !query.before_id->empty()) {
      const auto seq = seq_of(by_id, *query.before_id);
      if (!seq) {
        return make_error_code(Errc::NotFound);
      }
      b.before_seq = *seq;
    }
    // The time window as a seq range, one index probe per end; see PgStore::query_archive.
    ArchivePage page;
    codec::ArchiveBounds window = codec::archive_bounds(query);  // no cursors: for the count
    if (query.start) {
      const long long start = *query.start;
      const auto first = seq_of(
          "SELECT seq FROM tc_archive WHERE room_jid = :room AND created_at >= :start "
          "ORDER BY created_at, seq LIMIT 1",
          start);
      if (!first) {
        page.complete = true;
        page.count = 0;
        return page;
      }
      window.after_seq = *first - 1;
      b.after_seq = std::max(b.after_seq, window.after_seq);
    }
    if (query.end) {
      const long long end = *query.end;
      const auto last = seq_of(
          "SELECT seq FROM tc_archive WHERE room_jid = :room AND created_at <= :end "
          "ORDER BY created_at DESC, seq DESC LIMIT 1",
          end);
      if (!last) {
        page.complete = true;
        page.count = 0;
        return page;
      }
      window.before_seq = *last + 1;
      b.before_seq = std::min(b.before_seq, window.before_seq);
    }

    // One more row than asked for tells whether this is the last page in that direction.
    const long long limit = static_cast<long long>(query.max) + 1;
    const FilterValues page_values = filter_values(query, b);
    MessageRow row;
    Query page_query(sql);
    page_query.into_row(row);
    bind_filter(page_query, page_values);
    page_query.use(limit).start(std::string("SELECT ") + kArchiveColumns + " FROM tc_archive" +
                                archive_index_hint() + archive_filter() + " ORDER BY seq " +
                                (b.backward ? "DESC" : "ASC") + " LIMIT :lim");
    std::size_t fetched = 0;
    while (page_query.fetch()) {
      if (++fetched <= query.max) {
        page.messages.push_back(row.to_record());
      }
    }
    page.complete = fetched <= query.max;
    if (b.backward) {
      std::reverse(page.messages.begin(), page.messages.end());
    }

    // The count ignores the cursors (XEP-0059) and stops at kMaxCount.
    long long count = 0;
    const long long count_limit = static_cast<long long>(codec::kMaxCount) + 1;
    const FilterValues count_values = filter_values(query, window);
    Query count_query(sql);
    count_query.into(count);
    bind_filter(count_query, count_values);
    count_query.use(count_limit)
        .start(std::string("SELECT COUNT(*) FROM (SELECT 1 FROM tc_archive") +
               archive_index_hint() + archive_filter() + " LIMIT :lim) AS window_rows");
    count_query.fetch();
    if (static_cast<std::size_t>(count) <= codec::kMaxCount) {
      page.count = static_cast<std::size_t>(count);
    }
    tx.commit();
    return page;
  });
}

Result<void> SociStore::migrate() {
  // SQLite's BEGIN IMMEDIATE serialises migrators; with ODBC the driver may start the
  // transaction lazily, so a loser can still fail on the write lock. It then retries and finds
  // the work done (the version is re-read inside each transaction).
  Result<void> result;
  for (int attempt = 0; attempt < 5; ++attempt) {
    result = migrate_once();
    if (result || (result.error() != Errc::QueryFailed && result.error() != Errc::Unavailable)) {
      return result;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100 * (attempt + 1)));
  }
  return result;
}

Result<void> SociStore::migrate_once() {
  return guarded("migrate", [this](soci::session& sql) -> Result<void> {
    for (;;) {
      Transaction tx(sql, dialect_, Transaction::Mode::Write);
      if (dialect_ == Dialect::Postgresql) {
        sql << std::string(schema::postgresql::kMigrationLock);
      }
      schema::DbState state;
      state.version = read_version(sql);
      {
        std::string name;
        Query q(sql);
        q.into(name).start(std::string(schema::list_tables_query(dialect_)));
        while (q.fetch()) {
          state.tc_tables.push_back(name);
        }
      }
      if (auto ok = schema::check_state(state, redacted_); !ok) {
        return ok;
      }
      if (state.version >= schema::latest_version()) {
        tx.commit();
        return {};
      }
      const schema::Migration& m = schema::migrations(dialect_)[state.version];
      sql << std::string(schema::bootstrap_statement(dialect_));
      for (const std::string_view statement : m.statements) {
        sql << std::string(statement);
      }
      const int version = m.version;
      const long long applied_at = schema::now_millis();
      Query(sql)
          .use(version)
          .use(applied_at)
          .run("INSERT INTO tc_schema_version (version, applied_at) VALUES (:v, :t)");
      tx.commit();
      spdlog::info("storage: {} migrated to schema version {} ({})", redacted_, m.version,
                   m.summary);
    }
  });
}

/// Removes "TcDialect=..." from an ODBC connection string; returns the dialect it named.
Result<std::optional<Dialect>> take_dialect(std::string& connection_string) {
  std::optional<Dialect> dialect;
  std::string out;
  std::string_view rest = connection_string;
  while (!rest.empty()) {
    const auto semi = rest.find(';');
    const std::string_view part = rest.substr(0, semi);
    rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
    std::string lower(part);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower.starts_with("tcdialect=")) {
      const std::string value = lower.substr(10);
      if (value == "postgresql" || value == "postgres") {
        dialect = Dialect::Postgresql;
      } else if (value == "sqlite" || value == "sqlite3") {
        dialect = Dialect::Sqlite;
      } else {
        return make_error_code(Errc::BadUrl);
      }
      continue;
    }
    if (!part.empty()) {
      out.append(part).append(";");
    }
  }
  connection_string = std::move(out);
  return dialect;
}

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const SqliteOptions& options) {
  auto store =
      std::make_unique<SociStore>(Flavor::Sqlite, std::string{}, "sqlite:" + options.path, options);
  if (auto ok = store->open(Dialect::Sqlite); !ok) {
    return ok.error();
  }
  return std::unique_ptr<Store>(std::move(store));
}

Result<std::unique_ptr<Store>> open_odbc_store(std::string_view connection_string) {
  std::string conn(connection_string);
  auto dialect = take_dialect(conn);
  if (!dialect) {
    spdlog::error("storage: TcDialect must be postgresql or sqlite in {}",
                  redact_url(connection_string));
    return dialect.error();
  }
  auto store = std::make_unique<SociStore>(
      Flavor::Odbc, conn, redact_url("odbc://" + std::string(connection_string)), SqliteOptions{});
  if (auto ok = store->open(*dialect); !ok) {
    return ok.error();
  }
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace tc::storage
