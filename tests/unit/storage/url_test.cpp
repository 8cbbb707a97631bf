// SPDX-License-Identifier: Apache-2.0
// open_store() URL handling, redact_url(), the error category and the private codec.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

#include "storage/errc.h"
#include "storage/store.h"

#include "codec.h"

namespace tc::storage {
namespace {

TEST(OpenStore, RejectsUnknownSchemesAndEmptyPaths) {
  for (const char* url : {"", "mysql://localhost/tc", "sqlite:", "sqlite://", "odbc://",
                          "http://example.com", "sqlite:///tmp/x.db?journal=off"}) {
    auto store = open_store(url);
    ASSERT_FALSE(store) << url;
    EXPECT_EQ(store.error(), Errc::BadUrl) << url;
  }
}

TEST(OpenStore, InMemorySqliteWorks) {
  auto store = open_store("sqlite::memory:");
  ASSERT_TRUE(store);
  EXPECT_EQ((*store)->backend(), "sqlite");
  ASSERT_TRUE((*store)->migrate());
  EXPECT_EQ(*(*store)->schema_version(), Store::latest_schema_version());
  EXPECT_TRUE((*store)->list_accounts()->empty());
}

TEST(OpenStore, RelativeAndAbsoluteSqlitePaths) {
  std::string templ = (std::filesystem::temp_directory_path() / "tc-url-XXXXXX").string();
  ASSERT_NE(::mkdtemp(templ.data()), nullptr);
  const std::filesystem::path dir = templ;
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir);
  {
    auto relative = open_store("sqlite://rel.db?synchronous=normal&busy_timeout=100");
    ASSERT_TRUE(relative);
    ASSERT_TRUE((*relative)->migrate());
  }
  std::filesystem::current_path(cwd);
  EXPECT_TRUE(std::filesystem::exists(dir / "rel.db"));
  {
    auto absolute = open_store("sqlite://" + (dir / "rel.db").string());
    ASSERT_TRUE(absolute);
    EXPECT_EQ(*(*absolute)->schema_version(), Store::latest_schema_version());
  }
  std::filesystem::remove_all(dir);
}

TEST(OpenStore, UnreachablePostgresqlIsUnavailable) {
  // Port 1 on loopback: refused at once.
  auto store = open_store("postgresql://nobody:secret@127.0.0.1:1/tc");
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error(), Errc::Unavailable);
}

TEST(OpenStore, UnwritableSqliteIsUnavailable) {
  auto store = open_store("sqlite:///nonexistent-dir/for/sure/tc.db");
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error(), Errc::Unavailable);
}

TEST(RedactUrl, HidesPasswords) {
  EXPECT_EQ(redact_url("postgresql://tc:s3cret@db.example.com:5432/tc"),
            "postgresql://tc:***@db.example.com:5432/tc");
  EXPECT_EQ(redact_url("postgres://tc@db/tc?password=s3cret&sslmode=require"),
            "postgres://tc@db/tc?password=***&sslmode=require");
  EXPECT_EQ(redact_url("postgresql://u:p%40ss@h/db?Password=x"),
            "postgresql://u:***@h/db?Password=***");
  EXPECT_EQ(redact_url("odbc://DRIVER={PostgreSQL Unicode};Server=db;UID=tc;PWD=s3cret;"),
            "odbc://DRIVER={PostgreSQL Unicode};Server=db;UID=tc;PWD=***;");
  EXPECT_EQ(redact_url("odbc://DSN=tc;Pwd={a;b}c;Uid=x"), "odbc://DSN=tc;Pwd=***;Uid=x");
  EXPECT_EQ(redact_url("sqlite:///var/lib/tc.db"), "sqlite:///var/lib/tc.db");
  EXPECT_EQ(redact_url("postgresql://host/db"), "postgresql://host/db");
  EXPECT_EQ(redact_url("postgresql://user@host/db"), "postgresql://user@host/db");
}

TEST(ErrorCategory, HasANameAndReadableMessages) {
  const boost::system::error_code ec = Errc::SchemaTooNew;
  EXPECT_STREQ(ec.category().name(), "storage");
  EXPECT_NE(ec.message().find("newer"), std::string::npos);
  for (int e = 1; e <= static_cast<int>(Errc::Unsupported); ++e) {
    const boost::system::error_code code = static_cast<Errc>(e);
    EXPECT_FALSE(code.message().empty());
    EXPECT_EQ(code.message().find("unknown"), std::string::npos) << e;
  }
  EXPECT_TRUE(ec == Errc::SchemaTooNew);
  EXPECT_FALSE(ec == Errc::SchemaMismatch);
}

TEST(Codec, Base64RoundTripsBinary) {
  for (const std::string& bytes :
       {std::string(), std::string("f"), std::string("fo"), std::string("foo"), std::string("foob"),
        std::string("\0\xff\x10\x80 ", 5), std::string(257, '\xaa')}) {
    const std::string text = codec::base64_encode(bytes);
    EXPECT_EQ(text.size() % 4, 0u);
    auto back = codec::base64_decode(text);
    ASSERT_TRUE(back) << text;
    EXPECT_EQ(*back, bytes);
  }
  EXPECT_EQ(codec::base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(codec::base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_FALSE(codec::base64_decode("Zm9"));
  EXPECT_FALSE(codec::base64_decode("Zm=v"));
  EXPECT_FALSE(codec::base64_decode("Z=9v"));
  EXPECT_FALSE(codec::base64_decode("Zm9v*A=="));
}

TEST(Codec, AffiliationText) {
  for (const Affiliation a :
       {Affiliation::Owner, Affiliation::Admin, Affiliation::Member, Affiliation::Outcast}) {
    EXPECT_EQ(codec::parse_affiliation(codec::affiliation_text(a)), a);
  }
  EXPECT_FALSE(codec::parse_affiliation("none"));
  EXPECT_FALSE(codec::parse_affiliation("Owner"));
}

}  // namespace
}  // namespace tc::storage
