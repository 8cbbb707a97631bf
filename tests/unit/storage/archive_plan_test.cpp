// SPDX-License-Identifier: Apache-2.0
// The archive query planner's SQL text and bounds, without a database (store tests run the plans).
#include "archive_plan.h"

#include <algorithm>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "storage/errc.h"

namespace tc::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

ArchiveQuery query() {
  ArchiveQuery q;
  q.room_jid = "lobby@conference.example.com";
  q.max = 20;
  return q;
}

/// The index-th value as an integer (fails the test when it is text).
long long number(const SqlStatement& s, std::size_t index) {
  EXPECT_LT(index, s.values.size());
  const auto* n = std::get_if<long long>(&s.values.at(index));
  EXPECT_NE(n, nullptr) << "value " << index << " is text";
  return n != nullptr ? *n : 0;
}

TEST(ArchivePlan, PlainPageNeedsNoProbesAndNumbersEachPlaceholderOnce) {
  const ArchiveQuery q = query();
  ArchivePlan plan(q, schema::Dialect::Postgresql, sql::Placeholders::Numbered);
  EXPECT_TRUE(plan.probes().empty());
  const SqlStatement page = plan.page();
  EXPECT_EQ(static_cast<std::size_t>(std::count(page.text.begin(), page.text.end(), '$')),
            page.values.size())
      << page.text;
  EXPECT_THAT(page.text, HasSubstr("$" + std::to_string(page.values.size())));
  EXPECT_THAT(page.text, HasSubstr("(room_jid, seq) > ("));
  EXPECT_THAT(page.text, HasSubstr("ORDER BY seq ASC LIMIT $"));
  EXPECT_EQ(number(page, page.values.size() - 1), 21);  // max + 1
  EXPECT_THAT(plan.count().text, HasSubstr("SELECT COUNT(*) FROM (SELECT 1 FROM tc_archive"));
}

TEST(ArchivePlan, SqliteIsPinnedToTheRoomSeqIndexAndNamesPlaceholders) {
  const ArchiveQuery q = query();
  ArchivePlan plan(q, schema::Dialect::Sqlite, sql::Placeholders::Named);
  const SqlStatement page = plan.page();
  EXPECT_THAT(page.text, HasSubstr("FROM tc_archive INDEXED BY tc_archive_room_seq WHERE"));
  EXPECT_THAT(page.text, HasSubstr(" AND seq > :p2 AND seq < :p3"));
  EXPECT_THAT(page.text, Not(HasSubstr("$")));
  EXPECT_THAT(page.text, Not(HasSubstr("(room_jid, seq)")));
}

TEST(ArchivePlan, CursorsAndWindowBecomeProbesInOrder) {
  ArchiveQuery q = query();
  q.after_id = "a";
  q.before_id = "b";
  q.start = 1000;
  q.end = 2000;
  ArchivePlan plan(q, schema::Dialect::Sqlite, sql::Placeholders::Named);
  std::vector<ArchivePlan::Probe::Kind> kinds;
  for (const auto& probe : plan.probes()) {
    kinds.push_back(probe.kind);
  }
  using Kind = ArchivePlan::Probe::Kind;
  EXPECT_THAT(kinds, ElementsAre(Kind::AfterId, Kind::BeforeId, Kind::Start, Kind::End));
  EXPECT_FALSE(plan.resolve(plan.probes()[0], 5));
  EXPECT_FALSE(plan.resolve(plan.probes()[1], 50));
  EXPECT_FALSE(plan.resolve(plan.probes()[2], 10));  // the window starts after seq 9
  EXPECT_FALSE(plan.resolve(plan.probes()[3], 40));  // and ends before seq 41
  // Values: room, after, before, start, end, nick, nick, jid, jid, presence, limit.
  const SqlStatement page = plan.page();
  EXPECT_EQ(number(page, 1), 9);   // max(cursor 5, window 9)
  EXPECT_EQ(number(page, 2), 41);  // min(cursor 50, window 41)
  EXPECT_THAT(page.text, HasSubstr("ORDER BY seq DESC"));
  // The count ignores the cursors.
  const SqlStatement count = plan.count();
  EXPECT_EQ(number(count, 1), 9);
  EXPECT_EQ(number(count, 2), 41);
}

TEST(ArchivePlan, ExtendedIdsNarrowTheWindowAndTheCountWhileCursorsPageWithinIt) {
  ArchiveQuery q = query();
  q.with_jid = "bob@example.com/phone";
  q.after_id = "cursor";
  q.window_after_id = "x";
  q.window_before_id = "y";
  q.start = 1000;
  ArchivePlan plan(q, schema::Dialect::Sqlite, sql::Placeholders::Named);
  std::vector<ArchivePlan::Probe::Kind> kinds;
  for (const auto& probe : plan.probes()) {
    kinds.push_back(probe.kind);
  }
  using Kind = ArchivePlan::Probe::Kind;
  EXPECT_THAT(kinds,
              ElementsAre(Kind::AfterId, Kind::WindowAfterId, Kind::WindowBeforeId, Kind::Start));
  EXPECT_FALSE(plan.resolve(plan.probes()[0], 30));  // the cursor
  EXPECT_FALSE(plan.resolve(plan.probes()[1], 20));  // after-id: strictly after seq 20
  EXPECT_FALSE(plan.resolve(plan.probes()[2], 60));  // before-id: strictly before seq 60
  EXPECT_FALSE(plan.resolve(plan.probes()[3], 5));   // start is older than after-id: no effect
  const SqlStatement page = plan.page();
  EXPECT_EQ(number(page, 1), 30);
  EXPECT_EQ(number(page, 2), 60);
  EXPECT_THAT(page.text, HasSubstr("OR sender_jid = "));
  EXPECT_THAT(page.text, HasSubstr("ORDER BY seq ASC"));  // before-id is no backward cursor
  const SqlStatement count = plan.count();
  EXPECT_EQ(number(count, 1), 20);
  EXPECT_EQ(number(count, 2), 60);

  ArchiveQuery gone = query();
  gone.window_before_id = "gone";
  ArchivePlan unknown(gone, schema::Dialect::Postgresql, sql::Placeholders::Numbered);
  auto done = unknown.resolve(unknown.probes()[0], std::nullopt);
  ASSERT_TRUE(done);
  ASSERT_FALSE(*done);
  EXPECT_EQ(done->error(), Errc::NotFound);
}

TEST(ArchivePlan, UnknownCursorIsNotFoundAndAnEmptyWindowAnEmptyPage) {
  ArchiveQuery q = query();
  q.after_id = "gone";
  ArchivePlan cursor(q, schema::Dialect::Postgresql, sql::Placeholders::Numbered);
  auto done = cursor.resolve(cursor.probes()[0], std::nullopt);
  ASSERT_TRUE(done);
  ASSERT_FALSE(*done);
  EXPECT_EQ(done->error(), Errc::NotFound);

  ArchiveQuery w = query();
  w.start = 5000;
  ArchivePlan window(w, schema::Dialect::Postgresql, sql::Placeholders::Numbered);
  done = window.resolve(window.probes()[0], std::nullopt);
  ASSERT_TRUE(done && *done);
  EXPECT_TRUE((*done)->complete);
  EXPECT_TRUE((*done)->messages.empty());
  EXPECT_EQ((*done)->count, 0u);
}

TEST(ArchivePlan, FinishTrimsTheExtraRowReversesBackwardPagesAndCapsTheCount) {
  ArchiveQuery q = query();
  q.max = 2;
  q.before_id = "";
  ArchivePlan plan(q, schema::Dialect::Sqlite, sql::Placeholders::Named);
  std::vector<ArchivedMessage> rows(3);
  rows[0].seq = 9;
  rows[1].seq = 8;
  rows[2].seq = 7;
  ArchivePage page = plan.finish(rows, 3);
  EXPECT_FALSE(page.complete);
  ASSERT_EQ(page.messages.size(), 2u);
  EXPECT_EQ(page.messages[0].seq, 8);  // oldest first
  EXPECT_EQ(page.messages[1].seq, 9);
  EXPECT_EQ(page.count, 3u);
  page = plan.finish({}, ArchivePlan::kMaxCount + 1);
  EXPECT_TRUE(page.complete);
  EXPECT_FALSE(page.count);
}

}  // namespace
}  // namespace tc::storage
