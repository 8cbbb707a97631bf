// SPDX-License-Identifier: Apache-2.0
// PostgreSQL through libpqxx 6.4. Reads that may be large use COPY (query) TO STDOUT; loads use
// COPY FROM STDIN. Every pqxx exception becomes a DbError in guarded().
//
// The COPYs run on libpq's handle of pqxx's connection (PgConnection keeps it), inside pqxx's
// transaction: pqxx 6.4's stream_from/stream_to hold each row two or three times over (the
// line, a copy with its newline, the tuple), which for a 16 MB stanza is most of the memory
// budget. Here a row arrives once (libpq's buffer, then the decoded fields) and leaves in
// 256 kB pieces.
#include <array>
#include <charconv>
#include <optional>
#include <string>
#include <utility>

#include <libpq-fe.h>
#include <pqxx/pqxx>

#include "storage/store.h"

#include "copy_text.h"
#include "db_backends.h"

namespace tc::merge {
/// One COPY field: text or NULL (libpqxx 6.4 has no string_traits for std::optional).
struct CopyField {
  std::string text;
  bool null = false;
};
}  // namespace tc::merge

template <>
struct pqxx::string_traits<tc::merge::CopyField> {
  static constexpr const char* name() noexcept { return "tc::merge::CopyField"; }
  static constexpr bool has_null() noexcept { return true; }
  static bool is_null(const tc::merge::CopyField& f) { return f.null; }
  static tc::merge::CopyField null() { return {{}, true}; }
  static void from_string(const char text[], tc::merge::CopyField& f) { f = {text, false}; }
  static std::string to_string(const tc::merge::CopyField& f) { return f.text; }
};

namespace tc::merge {
namespace {

constexpr std::size_t kMaxCopyColumns = 14;

DbError convert(const std::exception& e) {
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    return DbError(DbFailure::Connect, e.what());
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    const std::string state = sql->sqlstate();
    std::string message = e.what();
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
      message.pop_back();
    }
    // libpqxx 6.4 leaves sqlstate() empty for some statements; its exception classes and the
    // message still tell.
    if (state == "42501" || dynamic_cast<const pqxx::insufficient_privilege*>(&e) != nullptr ||
        message.find("permission denied") != std::string::npos) {
      return DbError(DbFailure::Permission, message);
    }
    if (state == "42P01" || state == "42703" ||
        dynamic_cast<const pqxx::undefined_table*>(&e) != nullptr ||
        dynamic_cast<const pqxx::undefined_column*>(&e) != nullptr) {
      return DbError(DbFailure::Missing, message);
    }
    if (state.starts_with("08") || state.starts_with("57P") || state == "28P01" ||
        state == "28000" || state == "3D000") {
      return DbError(DbFailure::Connect, message);
    }
    return DbError(DbFailure::Other, state.empty() ? message : message + " [" + state + "]");
  }
  return DbError(DbFailure::Other, e.what());
}

template <std::size_t N>
void copy_rows(pqxx::transaction_base& tx, const std::string& table,
               const std::vector<std::string>& columns, const RowSource& next) {
  pqxx::stream_to out{tx, table, columns};
  Row row;
  std::array<CopyField, N> fields;
  while (next(row)) {
    if (row.size() != N) {
      throw DbError(DbFailure::Other, "bulk_insert: row width does not match the columns");
    }
    for (std::size_t i = 0; i < N; ++i) {
      fields[i].null = !row[i];
      if (row[i]) {
        fields[i].text = std::move(*row[i]);
      }
    }
    out << fields;
  }
  out.complete();
}

template <std::size_t... I>
void copy_dispatch(std::size_t n, pqxx::transaction_base& tx, const std::string& table,
                   const std::vector<std::string>& columns, const RowSource& next,
                   std::index_sequence<I...>) {
  const bool done =
      ((n == I + 1 ? (copy_rows<I + 1>(tx, table, columns, next), true) : false) || ...);
  if (!done) {
    throw DbError(DbFailure::Other, "bulk_insert: too many columns");
  }
}

/// A pqxx connection that also keeps libpq's handle (pqxx 6.4 does not expose it): the
/// connection policy sees every handle pqxx creates.
class PgConnection final : public pqxx::connection_base {
 public:
  explicit PgConnection(const std::string& options) : connection_base(policy_), policy_(options) {
    init();
  }
  ~PgConnection() { close(); }
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  PGconn* handle() const { return policy_.handle_; }

 private:
  class Policy final : public pqxx::connect_direct {
   public:
    explicit Policy(const std::string& options) : connect_direct(options) {}
    handle do_startconnect(handle orig) override {
      handle_ = connect_direct::do_startconnect(orig);
      return handle_;
    }
    handle do_completeconnect(handle orig) override {
      handle_ = connect_direct::do_completeconnect(orig);
      return handle_;
    }
    handle do_dropconnect(handle orig) noexcept override {
      handle_ = connect_direct::do_dropconnect(orig);
      return handle_;
    }
    handle do_disconnect(handle orig) noexcept override {
      handle_ = connect_direct::do_disconnect(orig);
      return handle_;
    }
    PGconn* handle_ = nullptr;
  };
  Policy policy_;
};

/// A DbError from a libpq result (the same classification as convert()).
DbError result_error(PGconn* conn, const PGresult* r) {
  std::string message = r != nullptr ? PQresultErrorMessage(r) : PQerrorMessage(conn);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
    message.pop_back();
  }
  const char* field = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  const std::string state = field != nullptr ? field : "";
  if (state == "42501") {
    return DbError(DbFailure::Permission, message);
  }
  if (state == "42P01" || state == "42703") {
    return DbError(DbFailure::Missing, message);
  }
  if (PQstatus(conn) != CONNECTION_OK || state.starts_with("08") || state.starts_with("57P")) {
    return DbError(DbFailure::Connect, message);
  }
  return DbError(DbFailure::Other, state.empty() ? message : message + " [" + state + "]");
}

/// Runs `sql`, which must start a COPY in `expected` state.
void start_copy(PGconn* conn, const std::string& sql, ExecStatusType expected) {
  PGresult* r = PQexec(conn, sql.c_str());
  if (PQresultStatus(r) != expected) {
    DbError e = result_error(conn, r);
    PQclear(r);
    throw e;
  }
  PQclear(r);
}

/// Reads the results that end a COPY; throws the first error.
void end_copy(PGconn* conn) {
  std::optional<DbError> error;
  while (PGresult* r = PQgetResult(conn)) {
    if (PQresultStatus(r) != PGRES_COMMAND_OK && !error) {
      error = result_error(conn, r);
    }
    PQclear(r);
  }
  if (error) {
    throw *error;
  }
}

class PgCopyIn final : public CopyIn {
 public:
  PgCopyIn(PGconn* conn, const std::string& sql) : conn_(conn) {
    start_copy(conn_, sql, PGRES_COPY_IN);
    buffer_.reserve(kChunk + 4096);
  }
  ~PgCopyIn() override {
    if (conn_ != nullptr) {
      // Cancelled (an exception on the way): the server fails the COPY, and with it the
      // transaction, which the caller rolls back.
      PQputCopyEnd(conn_, "tc-merge: batch abandoned");
      while (PGresult* r = PQgetResult(conn_)) {
        PQclear(r);
      }
    }
  }
  PgCopyIn(const PgCopyIn&) = delete;
  PgCopyIn& operator=(const PgCopyIn&) = delete;

  void field(std::string_view text) override {
    separate();
    // Escaped in slices, so the buffer never holds more than a chunk of a large value.
    while (!text.empty()) {
      const std::string_view slice = text.substr(0, kChunk);
      append_copy_field(buffer_, slice);
      text.remove_prefix(slice.size());
      if (buffer_.size() >= kChunk) {
        send();
      }
    }
  }
  void integer(long long value) override {
    separate();
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
    buffer_.append(digits, end);
  }
  void end_row() override {
    buffer_.push_back('\n');
    first_ = true;
    if (buffer_.size() >= kChunk) {
      send();
    }
  }
  void finish() override {
    send();
    PGconn* conn = std::exchange(conn_, nullptr);
    if (PQputCopyEnd(conn, nullptr) != 1) {
      throw result_error(conn, nullptr);
    }
    end_copy(conn);
  }

 private:
  static constexpr std::size_t kChunk = 256 * 1024;

  void separate() {
    if (!first_) {
      buffer_.push_back('\t');
    }
    first_ = false;
  }
  void send() {
    if (!buffer_.empty() &&
        PQputCopyData(conn_, buffer_.data(), static_cast<int>(buffer_.size())) != 1) {
      throw result_error(conn_, nullptr);
    }
    buffer_.clear();
  }

  PGconn* conn_;
  std::string buffer_;
  bool first_ = true;
};

class PgDb final : public Db {
 private:
  template <class F>
  auto guarded(F&& f) {
    try {
      return f();
    } catch (const DbError&) {
      throw;
    } catch (const std::exception& e) {
      throw convert(e);
    }
  }

  template <class F>
  void with_tx(F&& f) {
    if (tx_) {
      f(*tx_);
    } else {
      pqxx::nontransaction tx{*conn_};
      f(tx);
    }
  }

 public:
  PgDb(const std::string& url, std::string redacted, bool read_only) : conn_(guarded_connect(url)) {
    redacted_url_ = std::move(redacted);
    if (read_only) {
      exec("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", {});
    }
  }
  ~PgDb() override { rollback(); }

  Dialect dialect() const override { return Dialect::Postgresql; }
  std::string_view driver() const override { return "libpqxx"; }

  long long exec(std::string_view sql, std::span<const Param> params) override {
    return guarded([&] {
      const pqxx::result r = run(sql, params);
      return static_cast<long long>(r.affected_rows());
    });
  }

  void query(std::string_view sql, std::span<const Param> params, const RowSink& sink) override {
    guarded([&] {
      const pqxx::result r = run(sql, params);
      Row row;
      for (const auto& record : r) {
        row.clear();
        for (const auto& field : record) {
          row.push_back(field.is_null() ? Value{} : Value{field.c_str()});
        }
        if (!sink(row)) {
          break;
        }
      }
      return 0;
    });
  }

  void stream(std::string_view sql, std::span<const Param> params, const RowSink& sink) override {
    guarded([&] {
      PGconn* conn = conn_->handle();
      start_copy(conn, "COPY (" + inline_params(sql, params) + ") TO STDOUT", PGRES_COPY_OUT);
      // Whatever happens (the sink throws), the COPY is read to its end so the connection
      // stays usable: a COPY cannot be stopped early.
      struct Drain {
        PGconn* conn;
        bool done = false;
        ~Drain() {
          if (done) {
            return;
          }
          char* line = nullptr;
          while (PQgetCopyData(conn, &line, 0) > 0) {
            PQfreemem(line);
          }
          while (PGresult* r = PQgetResult(conn)) {
            PQclear(r);
          }
        }
      } drain{conn};
      Row row;
      bool wanted = true;
      for (;;) {
        char* line = nullptr;
        const int n = PQgetCopyData(conn, &line, 0);
        if (n == -1) {
          break;
        }
        if (n < 0) {
          throw result_error(conn, nullptr);
        }
        bool ok = true;
        if (wanted) {
          ok = decode_copy_line(std::string_view(line, static_cast<std::size_t>(n)), row);
        }
        PQfreemem(line);  // before the sink: a large row is held once, decoded
        if (!ok) {
          throw DbError(DbFailure::Other, "malformed COPY line from the server");
        }
        if (wanted) {
          wanted = sink(row);
        }
      }
      drain.done = true;
      end_copy(conn);
      return 0;
    });
  }

  void begin() override {
    guarded([&] {
      tx_ = std::make_unique<pqxx::work>(*conn_);
      return 0;
    });
  }
  void commit() override {
    guarded([&] {
      auto tx = std::move(tx_);
      tx->commit();
      return 0;
    });
  }
  void rollback() noexcept override {
    try {
      if (tx_) {
        auto tx = std::move(tx_);
        tx->abort();
      }
    } catch (const std::exception&) {
      // The connection is gone; the server rolled back.
    }
  }
  bool in_transaction() const override { return tx_ != nullptr; }

  std::unique_ptr<CopyIn> copy_in(std::string_view table,
                                  std::span<const Column> columns) override {
    return guarded([&] {
      std::string sql = "COPY " + std::string(table) + " (";
      for (std::size_t i = 0; i < columns.size(); ++i) {
        sql += (i ? ", " : "") + std::string(columns[i].name);
      }
      return std::make_unique<PgCopyIn>(conn_->handle(), sql + ") FROM STDIN");
    });
  }

  void bulk_insert(std::string_view table, std::span<const Column> columns,
                   const RowSource& next) override {
    guarded([&] {
      std::vector<std::string> names;
      for (const Column& c : columns) {
        names.emplace_back(c.name);
      }
      with_tx([&](pqxx::transaction_base& tx) {
        copy_dispatch(names.size(), tx, std::string(table), names, next,
                      std::make_index_sequence<kMaxCopyColumns>{});
      });
      return 0;
    });
  }

 private:
  static std::unique_ptr<PgConnection> guarded_connect(const std::string& url) {
    try {
      return std::make_unique<PgConnection>(storage::postgres_uri_with_defaults(url, "tc-merge"));
    } catch (const std::exception& e) {
      throw DbError(DbFailure::Connect, convert(e).what());
    }
  }

  pqxx::result run(std::string_view sql, std::span<const Param> params) {
    const std::string text = translate_placeholders(sql, PlaceholderStyle::Dollar);
    std::vector<std::string> storage(params.size());
    for (std::size_t i = 0; i < params.size(); ++i) {
      if (std::holds_alternative<long long>(params[i])) {
        storage[i] = std::to_string(std::get<long long>(params[i]));
      } else if (std::holds_alternative<std::string>(params[i])) {
        storage[i] = std::get<std::string>(params[i]);
      }
    }
    std::vector<const char*> values(params.size(), nullptr);  // nullptr binds NULL
    for (std::size_t i = 0; i < params.size(); ++i) {
      if (!std::holds_alternative<std::monostate>(params[i])) {
        values[i] = storage[i].c_str();
      }
    }
    pqxx::result r;
    with_tx([&](pqxx::transaction_base& tx) {
      r = tx.exec_params(text, pqxx::prepare::make_dynamic_params(values));
    });
    return r;
  }

  std::string inline_params(std::string_view sql, std::span<const Param> params) {
    std::string out;
    std::size_t n = 0;
    bool quoted = false;
    for (const char c : sql) {
      if (c == '\'') {
        quoted = !quoted;
      }
      if (c != '?' || quoted) {
        out.push_back(c);
        continue;
      }
      if (n >= params.size()) {
        throw DbError(DbFailure::Other, "too few parameters for the statement");
      }
      const Param& p = params[n++];
      if (std::holds_alternative<std::monostate>(p)) {
        out += "NULL";
      } else if (std::holds_alternative<long long>(p)) {
        out += std::to_string(std::get<long long>(p));
      } else {
        out += conn_->quote(std::get<std::string>(p));
      }
    }
    return out;
  }

  std::unique_ptr<PgConnection> conn_;
  std::unique_ptr<pqxx::work> tx_;
};

}  // namespace

std::unique_ptr<Db> open_pg(const std::string& url, bool read_only) {
  return std::make_unique<PgDb>(url, redact(url), read_only);
}

}  // namespace tc::merge
