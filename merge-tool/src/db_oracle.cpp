// SPDX-License-Identifier: Apache-2.0
// Oracle through SOCI's generic interface (soci::row), with the backend loaded by name at run time.
// Built in only with -DTC_WITH_ORACLE=ON (soci_oracle is not packaged in Debian), and NOT TESTED:
// no Oracle server or client library is available where this was written.
#include "db_backends.h"

#if defined(TC_WITH_ORACLE)
#include <cstdio>
#include <ctime>
#include <deque>

#include <soci/soci.h>
#endif

namespace tc::merge {

#if defined(TC_WITH_ORACLE)
namespace {

std::string to_text(const soci::row& row, std::size_t i) {
  switch (row.get_properties(i).get_data_type()) {
    case soci::dt_string:
    case soci::dt_xml:
      return row.get<std::string>(i);
    case soci::dt_integer:
      return std::to_string(row.get<int>(i));
    case soci::dt_long_long:
      return std::to_string(row.get<long long>(i));
    case soci::dt_unsigned_long_long:
      return std::to_string(row.get<unsigned long long>(i));
    case soci::dt_double: {
      const double d = row.get<double>(i);
      char buffer[64];
      std::snprintf(buffer, sizeof buffer, "%.17g", d);
      return buffer;
    }
    case soci::dt_date: {
      std::tm tm = row.get<std::tm>(i);
      return std::to_string(static_cast<long long>(timegm(&tm)) * 1000);
    }
    case soci::dt_blob:
      break;
  }
  throw DbError(DbFailure::Other, "Oracle: unsupported column type");
}

class OracleDb final : public Db {
 private:
  struct Bound {
    std::deque<std::string> texts;
    std::deque<long long> numbers;
    std::deque<soci::indicator> indicators;
  };

  static void bind(soci::statement& st, Bound& bound, std::span<const Param> params) {
    for (const Param& p : params) {
      if (std::holds_alternative<long long>(p)) {
        st.exchange(soci::use(bound.numbers.emplace_back(std::get<long long>(p))));
      } else if (std::holds_alternative<std::string>(p)) {
        st.exchange(soci::use(bound.texts.emplace_back(std::get<std::string>(p))));
      } else {
        st.exchange(
            soci::use(bound.texts.emplace_back(), bound.indicators.emplace_back(soci::i_null)));
      }
    }
  }

  template <class F>
  auto guarded(F&& f) {
    try {
      return f();
    } catch (const DbError&) {
      throw;
    } catch (const std::exception& e) {
      const std::string text = e.what();
      if (text.find("ORA-01031") != std::string::npos) {
        throw DbError(DbFailure::Permission, text);
      }
      if (text.find("ORA-00942") != std::string::npos) {
        throw DbError(DbFailure::Missing, text);
      }
      throw DbError(DbFailure::Other, text);
    }
  }

 public:
  OracleDb(const std::string& connect_string, std::string redacted, bool read_only) {
    redacted_url_ = std::move(redacted);
    try {
      session_ = std::make_unique<soci::session>("oracle", connect_string);
      if (read_only) {
        *session_ << "SET TRANSACTION READ ONLY";
      }
    } catch (const std::exception& e) {
      throw DbError(DbFailure::Connect, std::string("Oracle: ") + e.what());
    }
  }

  Dialect dialect() const override { return Dialect::Oracle; }
  std::string_view driver() const override { return "soci-oracle"; }

  long long exec(std::string_view sql, std::span<const Param> params) override {
    return guarded([&] {
      Bound bound;
      soci::statement st(*session_);
      bind(st, bound, params);
      st.alloc();
      st.prepare(translate_placeholders(sql, PlaceholderStyle::Colon));
      st.define_and_bind();
      st.execute(true);
      return st.get_affected_rows();
    });
  }

  void query(std::string_view sql, std::span<const Param> params, const RowSink& sink) override {
    guarded([&] {
      Bound bound;
      soci::row soci_row;
      soci::statement st(*session_);
      st.exchange_for_rowset(soci::into(soci_row));
      bind(st, bound, params);
      st.alloc();
      st.prepare(translate_placeholders(sql, PlaceholderStyle::Colon));
      st.define_and_bind();
      st.execute(false);
      Row row;
      while (st.fetch()) {
        row.resize(soci_row.size());
        for (std::size_t i = 0; i < soci_row.size(); ++i) {
          if (soci_row.get_indicator(i) == soci::i_null) {
            row[i].reset();
          } else {
            row[i] = to_text(soci_row, i);
          }
        }
        if (!sink(row)) {
          break;
        }
      }
      return 0;
    });
  }

  void begin() override {
    guarded([&] {
      session_->begin();
      return 0;
    });
    in_tx_ = true;
  }
  void commit() override {
    in_tx_ = false;
    guarded([&] {
      session_->commit();
      return 0;
    });
  }
  void rollback() noexcept override {
    if (!in_tx_) {
      return;
    }
    in_tx_ = false;
    try {
      session_->rollback();
    } catch (const std::exception&) {
      // connection gone; the server rolls back
    }
  }
  bool in_transaction() const override { return in_tx_; }

 private:
  std::unique_ptr<soci::session> session_;
  bool in_tx_ = false;
};

}  // namespace

std::unique_ptr<Db> open_oracle(const std::string& connect_string, const std::string& url,
                                bool read_only) {
  return std::make_unique<OracleDb>(connect_string, redact(url), read_only);
}

#else

std::unique_ptr<Db> open_oracle(const std::string&, const std::string&, bool) {
  throw DbError(DbFailure::Connect,
                "this tc-merge was built without Oracle support (configure with "
                "-DTC_WITH_ORACLE=ON and SOCI's oracle backend)");
}

#endif

}  // namespace tc::merge
