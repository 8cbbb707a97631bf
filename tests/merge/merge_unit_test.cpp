// SPDX-License-Identifier: Apache-2.0
// Unit tests of tc-merge's pure parts: COPY text decoding, JID rewriting, credentials, the
// vendor conversions, timestamps, the room digest, the schema versions it accepts.
#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "storage/store.h"
#include "xmpp/stream_parser.h"

#include "budget.h"
#include "copy_text.h"
#include "credentials.h"
#include "digest.h"
#include "engine.h"
#include "model.h"
#include "source.h"
#include "transform.h"

namespace tc::merge {
namespace {

TEST(SchemaVersions, AcceptsEveryVersionUpToTheLatestStorageCreates) {
  // `tc-merge jobs add` creates the target's schema with storage's migrate(), and sources are
  // nodes of this release: both are at storage's latest version, so the tool must know it
  // (version 4 added tc_room_groups, cluster state that is not merged).
  for (int v = 1; v <= storage::Store::latest_schema_version(); ++v) {
    EXPECT_TRUE(known_schema_version(v)) << v;
  }
  EXPECT_TRUE(known_schema_version(4));
  EXPECT_FALSE(known_schema_version(0));
  EXPECT_FALSE(known_schema_version(storage::Store::latest_schema_version() + 1));
}

TEST(CopyText, DecodesEscapesAndNulls) {
  Row row;
  ASSERT_TRUE(decode_copy_line("1\tx\\ty\\\\z\t\\N\t\t\\n\\r\\x41\\101\t\n", row));
  ASSERT_EQ(row.size(), 6u);
  EXPECT_EQ(row[0], "1");
  EXPECT_EQ(row[1], "x\ty\\z");
  EXPECT_FALSE(row[2].has_value());
  EXPECT_EQ(row[3], "");
  EXPECT_EQ(row[4], "\n\rAA");
  EXPECT_EQ(row[5], "");
}

TEST(CopyText, EncodedFieldsDecodeToThemselves) {
  const std::string fields[] = {
      "plain", "tab\there", "new\nline\r\n", "back\\slash\\N", "caf\xC3\xA9 \xF0\x9F\x8E\x89", ""};
  std::string line;
  for (const std::string& f : fields) {
    if (!line.empty() || &f != &fields[0]) {
      line.push_back('\t');
    }
    append_copy_field(line, f);
  }
  EXPECT_EQ(line.find('\n'), std::string::npos);
  Row row;
  ASSERT_TRUE(decode_copy_line(line, row));
  ASSERT_EQ(row.size(), std::size(fields));
  for (std::size_t i = 0; i < row.size(); ++i) {
    EXPECT_EQ(row[i], fields[i]);
  }
}

TEST(CopyText, KeepsUtf8AndRejectsTrailingBackslash) {
  Row row;
  ASSERT_TRUE(decode_copy_line("caf\xC3\xA9\t\xF0\x9F\x8E\x89", row));
  EXPECT_EQ(row[0], "caf\xC3\xA9");
  EXPECT_EQ(row[1], "\xF0\x9F\x8E\x89");
  EXPECT_FALSE(decode_copy_line("abc\\", row));
}

TEST(JidRewriter, RewritesAliasInJidsAndAttributeValues) {
  JidRewriter r;
  r.rename_domain("conference-1-StandAloneCluster.example.com", "conference.example.com");
  EXPECT_EQ(r.apply("room1@Conference-1-StandAloneCluster.example.com"),
            "room1@conference.example.com");
  EXPECT_EQ(r.apply("<message from='room1@conference-1-standalonecluster.example.com/nick' "
                    "to=\"conference-1-standalonecluster.example.com\"><body>mail "
                    "me@example.com</body></message>"),
            "<message from='room1@conference.example.com/nick' "
            "to=\"conference.example.com\"><body>mail me@example.com</body></message>");
  // A longer domain that merely starts with the alias is left alone.
  EXPECT_EQ(r.apply("x@conference-1-standalonecluster.example.com.evil"),
            "x@conference-1-standalonecluster.example.com.evil");
}

TEST(JidRewriter, RenamesWholeRoomJidsOnly) {
  JidRewriter r;
  r.rename_room("dev@conference.localhost", "dev-b@conference.localhost");
  EXPECT_EQ(r.apply("<message from=\"dev@conference.localhost/ann\"><stanza-id "
                    "by=\"dev@conference.localhost\"/></message>"),
            "<message from=\"dev-b@conference.localhost/ann\"><stanza-id "
            "by=\"dev-b@conference.localhost\"/></message>");
  EXPECT_EQ(r.apply("webdev@conference.localhost"), "webdev@conference.localhost");
}

// Issue 17: renaming a room changes the addresses of its stanzas, never what users wrote.
constexpr std::string_view kIssueBody =
    "please move to dev@conference.localhost, see xmpp:dev@conference.localhost?join "
    "(DEV@CONFERENCE.LOCALHOST/bob)";

TEST(RenameRoomAddresses, RenamesEnvelopeAndAddressesButNoText) {
  const std::string body(kIssueBody);
  std::string xml =
      "<message from='dev@conference.localhost/ann' type='groupchat' id='m1'>"
      "<body>" +
      body +
      "</body>"
      "<subject>dev@conference.localhost</subject>"
      "<x xmlns='http://jabber.org/protocol/muc#user'><item "
      "jid='Dev@Conference.Localhost/bob' reason='dev@conference.localhost'/></x>"
      "<occupant-id xmlns='urn:xmpp:occupant-id:0' id='dev@conference.localhost'/>"
      "<stanza-id xmlns=\"urn:xmpp:sid:0\" id=\"s1\" by=\"dev@conference.localhost\"/>"
      "<html><![CDATA[<a to='dev@conference.localhost'/>]]></html></message>";
  const auto n =
      rename_room_addresses(xml, "dev@conference.localhost", "dev-imp2@conference.localhost");
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 3u);
  EXPECT_EQ(
      xml,
      "<message from='dev-imp2@conference.localhost/ann' type='groupchat' id='m1'>"
      "<body>" +
          body +
          "</body>"
          "<subject>dev@conference.localhost</subject>"
          "<x xmlns='http://jabber.org/protocol/muc#user'><item "
          "jid='dev-imp2@conference.localhost/bob' reason='dev@conference.localhost'/></x>"
          "<occupant-id xmlns='urn:xmpp:occupant-id:0' id='dev@conference.localhost'/>"
          "<stanza-id xmlns=\"urn:xmpp:sid:0\" id=\"s1\" by=\"dev-imp2@conference.localhost\"/>"
          "<html><![CDATA[<a to='dev@conference.localhost'/>]]></html></message>");
  // Undoing it gives the source back, byte for byte (what verification relies on), apart from
  // the case of an address that was written in capitals.
  rename_room_addresses(xml, "dev-imp2@conference.localhost", "dev@conference.localhost");
  EXPECT_NE(xml.find("<body>" + body + "</body>"), std::string::npos);
  EXPECT_NE(xml.find("from='dev@conference.localhost/ann'"), std::string::npos);
}

TEST(RenameRoomAddresses, LeavesOtherRoomsAndOddSpellingsAlone) {
  std::string xml =
      "<message to = \"webdev@conference.localhost\" from=\"dev@conference.localhost.evil/x\" "
      "title='a > b'><body>x</body><addresses><address jid='dev@conference.localhost'/>"
      "</addresses></message>";
  const auto n = rename_room_addresses(xml, "dev@conference.localhost", "d@c");
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 1u);
  EXPECT_NE(xml.find("<address jid='d@c'/>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("webdev@conference.localhost"), std::string::npos);
  EXPECT_NE(xml.find("dev@conference.localhost.evil/x"), std::string::npos);
  std::string cut = "<message from='dev@conference.localhost";
  EXPECT_FALSE(rename_room_addresses(cut, "dev@conference.localhost", "d@c").has_value());
  EXPECT_EQ(cut, "<message from='dev@conference.localhost");
}

// The rename, seen through the project's XML parser: the same tree, with only the renamed
// attributes different, for stanzas written every way the archive holds them.
TEST(RenameRoomAddresses, ParsedTreeDiffersOnlyInRenamedAttributes) {
  const auto parse = [](const std::string& xml) {
    xmpp::StreamParser parser(xmpp::ParserLimits{1 << 20, 48, 64});
    std::vector<xmpp::StreamEvent> events;
    EXPECT_TRUE(
        parser.feed("<stream:stream xmlns='jabber:client' "
                    "xmlns:stream='http://etherx.jabber.org/streams'>",
                    events));
    EXPECT_TRUE(parser.feed(xml, events));
    EXPECT_EQ(events.size(), 2u);
    return events.back().element;
  };
  // Compares a and b node by node; attributes named from/to/jid/by may differ by the rename.
  std::function<void(const xmpp::XmlElement&, const xmpp::XmlElement&)> same;
  same = [&](const xmpp::XmlElement& a, const xmpp::XmlElement& b) {
    ASSERT_EQ(a.name(), b.name());
    ASSERT_EQ(a.text(), b.text());
    ASSERT_EQ(a.attrs().size(), b.attrs().size());
    for (std::size_t i = 0; i < a.attrs().size(); ++i) {
      const auto& [k, v] = a.attrs()[i];
      EXPECT_EQ(k, b.attrs()[i].first);
      std::string expected = v;
      if ((k == "from" || k == "to" || k == "jid" || k == "by") &&
          to_lower(bare_jid(v)) == "dev@conference.localhost") {
        expected = "dev-b@conference.localhost" + v.substr(bare_jid(v).size());
      }
      EXPECT_EQ(b.attrs()[i].second, expected) << k;
    }
    ASSERT_EQ(a.nodes().size(), b.nodes().size());
    for (std::size_t i = 0; i < a.nodes().size(); ++i) {
      same(a.nodes()[i], b.nodes()[i]);
    }
  };
  for (const std::string& xml : {
           "<message from=\"dev@conference.localhost/O&apos;Brien\" type=\"groupchat\"><body>" +
               std::string(kIssueBody) + " &lt;dev@conference.localhost&gt;</body></message>",
           std::string("<presence from='dev@conference.localhost/a' to='u@localhost/r'><x "
                       "xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' "
                       "jid='u@localhost/r' role='participant'/></x></presence>"),
           std::string("<message><forwarded xmlns='urn:xmpp:forward:0'><message "
                       "from='DEV@conference.localhost/z' to=\"dev@conference.localhost\"><body "
                       "xml:lang='en'>a\tb\n c ' \" &amp; dev@conference.localhost/z</body>"
                       "</message></forwarded></message>"),
       }) {
    SCOPED_TRACE(xml);
    std::string renamed = xml;
    ASSERT_TRUE(
        rename_room_addresses(renamed, "dev@conference.localhost", "dev-b@conference.localhost"));
    same(parse(xml), parse(renamed));
  }
}

TEST(Credentials, PutsPasswordsBackAndRemovesPlaceholders) {
  EXPECT_EQ(with_password("postgresql://tc:***@db:5432/tc", std::string("p@ss w")),
            "postgresql://tc:p%40ss%20w@db:5432/tc");
  EXPECT_EQ(with_password("postgresql://tc:***@db/tc", std::nullopt), "postgresql://tc@db/tc");
  EXPECT_EQ(with_password("postgresql://tc@db/tc?password=***&sslmode=require", std::nullopt),
            "postgresql://tc@db/tc?sslmode=require");
  EXPECT_EQ(with_password("postgresql://tc@db/tc", std::string("x")),
            "postgresql://tc@db/tc?password=x");
  EXPECT_EQ(with_password("odbc://DRIVER={PostgreSQL Unicode};Uid=tc;PWD=***;Database=tc",
                          std::string("a;b")),
            "odbc://DRIVER={PostgreSQL Unicode};Uid=tc;PWD={a;b};Database=tc");
  EXPECT_EQ(with_password("odbc://DSN=tc;PWD=***", std::nullopt), "odbc://DSN=tc");
  EXPECT_EQ(with_password("sqlite:///var/lib/tc.db", std::nullopt), "sqlite:///var/lib/tc.db");
}

TEST(Timestamps, ParsesDatabaseRenderings) {
  EXPECT_EQ(parse_timestamp_ms("1640995200287"), 1640995200287LL);
  EXPECT_EQ(parse_timestamp_ms("2022-01-01 00:00:00.287"), 1640995200287LL);
  EXPECT_EQ(parse_timestamp_ms("2022-01-01T00:00:00Z"), 1640995200000LL);
  EXPECT_EQ(parse_timestamp_ms("2022-01-01 02:00:00+02"), 1640995200000LL);
  EXPECT_EQ(parse_timestamp_ms("2021-12-31 19:00:00.5-05:00"), 1640995200500LL);
  EXPECT_FALSE(parse_timestamp_ms("yesterday").has_value());
}

TEST(Vendor, ConfigFormBecomesRoomConfigJson) {
  const std::string json = vendor_config_to_json(
      "<iq><query><x xmlns='jabber:x:data' type='submit'>"
      "<field var='muc#roomconfig_roomname'><value>R &amp; D</value></field>"
      "<field var='muc#roomconfig_membersonly'><value>1</value></field>"
      "<field var='muc#roomconfig_maxusers'><value>none</value></field>"
      "<field var='muc#roomconfig_whois'><value>anyone</value></field>"
      "<field var='muc#roomconfig_persistentroom'><value>0</value></field>"
      "<field var='vendor#other'><value>x</value></field></x></query></iq>",
      true);
  EXPECT_NE(json.find("\"name\":\"R & D\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"members_only\":true"), std::string::npos) << json;
  EXPECT_NE(json.find("\"max_users\":0"), std::string::npos) << json;
  EXPECT_NE(json.find("\"whois\":\"anyone\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"persistent\":false"), std::string::npos) << json;
}

TEST(Vendor, StanzaGetsStanzaIdAndLosesRootNamespace) {
  EXPECT_EQ(normalize_vendor_stanza("<message xmlns='jabber:client' from='r@c/n' "
                                    "type='groupchat'><body>hi</body></message>",
                                    "r@c", "tc-import-7"),
            "<message from='r@c/n' type='groupchat'><body>hi</body><stanza-id "
            "xmlns=\"urn:xmpp:sid:0\" id=\"tc-import-7\" by=\"r@c\"/></message>");
  // An id the room already stamped is kept as it is.
  const std::string stamped =
      "<message from='r@c/n'><body>x</body><stanza-id xmlns='urn:xmpp:sid:0' id='abc' "
      "by='r@c'/></message>";
  EXPECT_EQ(normalize_vendor_stanza(stamped, "r@c", "ignored"), stamped);
  EXPECT_EQ(find_attr(stamped, "<stanza-id", "id"), "abc");
  // An XML declaration goes; a root that is not a message is left for validation to judge
  // (it became "<x>...</message>" before; found by the merge_rows fuzzer).
  EXPECT_EQ(normalize_vendor_stanza("<?xml version='1.0'?>\n<message/>", "r@c", "i"),
            "<message><stanza-id xmlns=\"urn:xmpp:sid:0\" id=\"i\" by=\"r@c\"/></message>");
  EXPECT_EQ(normalize_vendor_stanza("<x/>", "r@c", "i"), "<x/>");
  EXPECT_EQ(normalize_vendor_stanza("<message/>\n", "r@c", "i"),
            "<message><stanza-id xmlns=\"urn:xmpp:sid:0\" id=\"i\" by=\"r@c\"/></message>");
  EXPECT_EQ(normalize_vendor_stanza("<messages/>", "r@c", "i"), "<messages/>");
}

TEST(Vendor, SynthesizedBodyKeepsCarriageReturns) {
  // A literal CR reads back as a newline; a Windows client's line ends must survive the import.
  const std::string made = synthesize_stanza("r@c", "n", "a\r\nb & <c>", "i");
  EXPECT_EQ(made,
            "<message from=\"r@c/n\" type=\"groupchat\"><body>a&#13;\nb &amp; &lt;c&gt;</body>"
            "<stanza-id xmlns=\"urn:xmpp:sid:0\" id=\"i\" by=\"r@c\"/></message>");
  const auto parsed = tc::xmpp::parse_element(made);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->child_text("body"), "a\r\nb & <c>");
}

TEST(Digest, IsOrderSensitiveAndStable) {
  RoomDigest a;
  a.add("1", "n", "j", "groupchat", "<m/>", 5);
  a.add("2", "n", "j", "groupchat", "<m/>", 6);
  RoomDigest b;
  b.add("2", "n", "j", "groupchat", "<m/>", 6);
  b.add("1", "n", "j", "groupchat", "<m/>", 5);
  RoomDigest c;
  c.add("1", "n", "j", "groupchat", "<m/>", 5);
  c.add("2", "n", "j", "groupchat", "<m/>", 6);
  const std::string da = a.finish();
  EXPECT_EQ(da.size(), 64u);
  EXPECT_NE(da, b.finish());
  EXPECT_EQ(da, c.finish());
}

TEST(Options, RoundTripThroughJson) {
  JobOptions o;
  o.collision = CollisionPolicy::Rename;
  o.rename_suffix = "n2";
  o.vendor_aliases = {"a.example", "b.example"};
  o.stale_after = std::chrono::seconds(12);
  const JobOptions back = JobOptions::from_json(o.to_json());
  EXPECT_EQ(back.collision, CollisionPolicy::Rename);
  EXPECT_EQ(back.rename_suffix, "n2");
  EXPECT_EQ(back.vendor_aliases, o.vendor_aliases);
  EXPECT_EQ(back.stale_after.count(), 12);
}

// Validation checks a stanza of kLargeValue bytes or more without building its tree (issue 17,
// item 3); it must answer as the broker's StreamParser does for the smaller ones.
TEST(StanzaCheck, TreelessCheckAgreesWithTheParser) {
  const std::string large(kLargeValue, 'x');
  std::string deep;
  for (int i = 0; i < 50; ++i) {
    deep += "<x>";
  }
  deep += "PAD";
  for (int i = 0; i < 50; ++i) {
    deep += "</x>";
  }
  std::string many_attributes = "<message";
  for (int i = 0; i < 70; ++i) {
    many_attributes += " a" + std::to_string(i) + "='v'";
  }
  many_attributes += "><body>PAD</body></message>";
  const std::pair<std::string, bool> cases[] = {
      {"<message to='r@c.example'><body>PAD</body></message>", true},
      {"<message><body>PAD &amp; &#x41; \xC3\xA9</body></message>  ", true},
      {"<message xmlns:e='urn:e'><e:x>PAD</e:x></message>", true},
      {"<message><body>PAD</body>", false},
      {"<message><body>PAD</body></message><message/>", false},
      // Found by the merge_rows fuzzer: a tag left open after the element was "ready", and
      // then stopped the merge's rename.
      {"<message><body>PAD</body></message><message", false},
      {"<message><body>PAD</body></message><x a='", false},
      {"<message><body>PAD</body></message>junk", false},
      {"junk<message><body>PAD</body></message>", false},
      {" <message><body>PAD</body></message>\n", true},
      {"<message><body>PAD</bod></message>", false},
      {"<message><!--c--><body>PAD</body></message>", false},
      {"<message><?pi x?><body>PAD</body></message>", false},
      {"<message><body>PAD &bogus;</body></message>", false},
      {"<message><e:x>PAD</e:x></message>", false},
      {"<message><body>PAD < </body></message>", false},
      {deep, false},
      {many_attributes, false},
  };
  for (const auto& [pattern, ok] : cases) {
    for (const std::string& pad : {std::string("x"), large}) {
      std::string xml = pattern;
      xml.replace(xml.find("PAD"), 3, pad);
      SCOPED_TRACE(pattern + (pad.size() > 1 ? " (large)" : " (small)"));
      EXPECT_EQ(stanza_is_one_element(xml), ok);
    }
  }
}

// The byte budget: a second large value waits for the first; a thread never waits for itself.
TEST(ByteBudget, OneLargeValueAtATime) {
  ByteBudget budget(10);
  budget.acquire(8);
  budget.acquire(8);  // the same thread: its own value seen twice
  std::atomic<bool> got{false};
  std::thread other([&] {
    budget.acquire(4);
    got = true;
    budget.release(4);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(got.load());
  budget.release(8);
  budget.release(8);
  other.join();
  EXPECT_TRUE(got.load());
}

}  // namespace
}  // namespace tc::merge
