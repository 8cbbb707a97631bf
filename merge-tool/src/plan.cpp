// SPDX-License-Identifier: Apache-2.0
// Opening sources and planning the merge: what every source room becomes in the target.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <set>
#include <tuple>
#include <unordered_map>

#include "storage/columns.h"

#include "credentials.h"
#include "engine.h"

namespace tc::merge {
namespace {

std::string label_name(char label) {
  return std::string("source ") + static_cast<char>(label - 32);
}

/// Where rooms with the same JID in both sources are recorded while planning.
struct RoomEntry {
  std::size_t a = SIZE_MAX;
  std::size_t b = SIZE_MAX;
};

std::string renamed(const std::string& jid, const std::string& suffix) {
  const auto at = jid.find('@');
  if (at == std::string::npos) {
    return jid + "-" + suffix;
  }
  return jid.substr(0, at) + "-" + suffix + jid.substr(at);
}

constexpr std::size_t kMaxListed = 50;  // individual findings of one kind before a summary

}  // namespace

const PlanRoom* Plan::find(char source, const std::string& source_jid) const {
  const auto it = by_source_.find({source, source_jid});
  return it == by_source_.end() ? nullptr : &rooms[it->second];
}

void Plan::index() {
  by_source_.clear();
  for (std::size_t i = 0; i < rooms.size(); ++i) {
    by_source_[{rooms[i].source, rooms[i].source_jid}] = i;
  }
}

std::unique_ptr<Source> open_source(char label, const SourceSpec& spec,
                                    const std::optional<std::string>& password,
                                    const JobOptions& options, const Tuning& tuning,
                                    std::vector<Finding>& findings) {
  const std::string name = label_name(label);
  std::unique_ptr<Source> source;
  try {
    const std::string url = with_password(spec.url, password);
    source = std::make_unique<Source>(label, open_db(url, true), spec.kind, tuning.page_rows);
    source->set_reconnect([url] { return open_db(url, true); });
  } catch (const DbError& e) {
    findings.push_back({Severity::Error, "source-unreachable", name,
                        std::string("cannot connect to ") + spec.url + ": " + e.what()});
    return nullptr;
  }
  Inspection seen;
  try {
    seen = source->inspect();
  } catch (const DbError& e) {
    findings.push_back({Severity::Error, "source-unreadable", name,
                        std::string("cannot read the schema: ") + e.what()});
    return nullptr;
  }
  if (source->kind() == SourceKind::Auto || !seen.schema_present) {
    findings.push_back(
        {Severity::Error, "schema-missing", name,
         spec.kind == SourceKind::Vendor
             ? "no vendor text-conference tables (TC_ROOMS, TC_USERS, TC_MSGARCHIVE) found"
             : "no tcbroker schema (tc_schema_version) and no vendor text-conference tables "
               "found; is this the node's database?"});
    return nullptr;
  }
  if (source->kind() == SourceKind::Tc) {
    if (!known_schema_version(seen.schema_version)) {
      findings.push_back({Severity::Error, "schema-unknown", name,
                          "schema version " + std::to_string(seen.schema_version) +
                              " is not one this tc-merge knows (it copies versions 1-" +
                              std::to_string(std::end(kKnownSchemaVersions)[-1]) +
                              "); use the tc-merge of the release that wrote it"});
      // Keep reading when the tables are there, so that this run still reports the rest
      // (collisions, conflicts); the error alone keeps the merge from running.
      if (!seen.missing.empty()) {
        return nullptr;
      }
      return source;
    }
    if (!seen.missing.empty()) {
      std::string list;
      for (const auto& m : seen.missing) {
        list += (list.empty() ? "" : ", ") + m;
      }
      findings.push_back({Severity::Error, "schema-incomplete", name,
                          "schema version " + std::to_string(seen.schema_version) +
                              " but tables missing: " + list});
      return nullptr;
    }
    findings.push_back({Severity::Info, "schema", name,
                        "tcbroker schema version " + std::to_string(seen.schema_version) + " (" +
                            std::string(source->db().driver()) + ", " +
                            std::string(dialect_name(source->db().dialect())) + ")"});
    return source;
  }
  // Vendor tables.
  if (!seen.missing.empty()) {
    std::string list;
    for (const auto& m : seen.missing) {
      list += (list.empty() ? "" : ", ") + m;
    }
    findings.push_back({Severity::Error, "schema-unknown", name,
                        "vendor text-conference tables lack columns this import needs: " + list});
    return nullptr;
  }
  if (options.conference_domain.empty()) {
    findings.push_back({Severity::Error, "conference-domain-missing", name,
                        "a vendor source needs --conference-domain (the MUC domain the merged "
                        "rooms will have)"});
    return nullptr;
  }
  JidRewriter rewriter;
  std::set<std::string> aliases(seen.aliases.begin(), seen.aliases.end());
  for (const auto& a : options.vendor_aliases) {
    aliases.insert(to_lower(a));
  }
  std::string list;
  for (const auto& a : aliases) {
    if (a.empty()) {
      continue;
    }
    rewriter.rename_domain(a, options.conference_domain);
    list += (list.empty() ? "" : ", ") + a;
  }
  source->set_rewriter(std::move(rewriter));
  findings.push_back({Severity::Info, "vendor-schema", name,
                      "vendor text-conference tables; chat-node aliases rewritten to " +
                          options.conference_domain + ": " + (list.empty() ? "(none)" : list)});
  if (seen.vendor_adhoc_rooms > 0) {
    findings.push_back({Severity::Warning, "vendor-adhoc-rooms", name,
                        std::to_string(seen.vendor_adhoc_rooms) +
                            " ad-hoc rooms are not imported (only persistent rooms are)"});
  }
  if (seen.vendor_history_rows > 0) {
    findings.push_back({Severity::Info, "vendor-history", name,
                        std::to_string(seen.vendor_history_rows) +
                            " TC_MESSAGES rows (join history) are not imported: the archive "
                            "(TC_MSGARCHIVE) holds the same messages"});
  }
  if (seen.vendor_undated_rows > 0) {
    findings.push_back({Severity::Warning, "vendor-undated", name,
                        std::to_string(seen.vendor_undated_rows) +
                            " archive rows have no SENT_DATE; they are imported with time 0"});
  }
  return source;
}

void check_nodes(Db& db, const std::string& where, std::chrono::seconds stale_after,
                 std::vector<Finding>& findings) {
  if (!db.table_exists("tc_nodes")) {
    findings.push_back({Severity::Info, "nodes-unknown", where,
                        "no tc_nodes table: the database has no node state, so no node can be "
                        "running on it (make sure the text-conference service is stopped)"});
    return;
  }
  const long long now = now_ms();
  const long long fresh_after = now - std::chrono::milliseconds(stale_after).count();
  int running = 0;
  db.query(
      "SELECT " + storage::columns::list(storage::columns::kNodeColumnsV2) + " FROM tc_nodes", {},
      [&](const Row& row) {
        const bool on = row[1] && to_int(row[1]) != 0;
        const long long heartbeat = row[2] ? to_int(row[2]) : 0;
        const std::string node = row[0].value_or("?");
        if (on && heartbeat > fresh_after) {
          ++running;
          findings.push_back({Severity::Error, "service-running", where + ", node " + node,
                              "the text-conference service is running on node " + node +
                                  " (last heartbeat " +
                                  std::to_string(std::max(0LL, now - heartbeat) / 1000) +
                                  " s ago); stop it on both nodes of the group (stop tcbroker, "
                                  "or its text-conference service) and validate again"});
        } else if (on) {
          findings.push_back({Severity::Warning, "service-stale", where + ", node " + node,
                              "node " + node +
                                  " says the text-conference service runs, but its last "
                                  "heartbeat is " +
                                  std::to_string((now - heartbeat) / 1000) + " s old (more than " +
                                  std::to_string(stale_after.count()) + " s): treated as stopped"});
        }
        return true;
      });
  if (running == 0) {
    findings.push_back({Severity::Info, "service-stopped", where,
                        "no node has the text-conference service running"});
  }
}

Plan build_plan(Source& a, Source& b, const Job& job, std::vector<Finding>& findings) {
  Plan plan;
  const CollisionPolicy policy = job.options.collision;
  // Rooms of both sources: from the room tables and from the archive (rows may exist for rooms
  // that were never saved, or were deleted without purging).
  std::unordered_map<std::string, RoomEntry> by_jid;  // lower-case jid after alias rewriting
  for (Source* s : {&a, &b}) {
    std::unordered_map<std::string, std::size_t> mine;  // source_jid -> plan index
    s->each_room([&](SourceRoom& r) {
      PlanRoom p;
      p.source = s->label();
      p.source_jid = r.source_jid;
      p.jid = r.jid;
      p.target_jid = r.jid;
      p.has_row = true;
      mine[r.source_jid] = plan.rooms.size();
      plan.rooms.push_back(std::move(p));
    });
    for (ArchiveStats& st : s->archive_stats()) {
      auto it = mine.find(st.source_jid);
      if (it == mine.end()) {
        if (s->kind() == SourceKind::Vendor) {
          continue;  // a vendor archive without a persistent room: ad-hoc or deleted rooms
        }
        PlanRoom p;
        p.source = s->label();
        p.source_jid = st.source_jid;
        p.jid = st.source_jid;
        p.target_jid = st.source_jid;
        it = mine.emplace(st.source_jid, plan.rooms.size()).first;
        plan.rooms.push_back(std::move(p));
      }
      PlanRoom& p = plan.rooms[it->second];
      p.count = st.count;
      p.bytes = st.bytes;
      p.max_key = st.max_key;
    }
    for (const auto& [jid, index] : mine) {
      RoomEntry& e = by_jid[to_lower(plan.rooms[index].jid)];
      (s->label() == 'a' ? e.a : e.b) = index;
    }
  }

  // Collisions.
  std::set<std::string> colliding;  // lower-case jids
  const std::string suffix = !job.options.rename_suffix.empty() ? job.options.rename_suffix
                             : !job.b.node.empty()              ? job.b.node
                                                                : "b";
  std::size_t listed = 0;
  std::vector<std::pair<std::string, RoomEntry>> collisions;
  for (const auto& [key, e] : by_jid) {
    if (e.a != SIZE_MAX && e.b != SIZE_MAX) {
      collisions.emplace_back(key, e);
    }
  }
  std::sort(collisions.begin(), collisions.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });
  for (const auto& [key, e] : collisions) {
    colliding.insert(key);
    PlanRoom& ra = plan.rooms[e.a];
    PlanRoom& rb = plan.rooms[e.b];
    const std::string counts = " (A: " + std::to_string(ra.count) +
                               " messages, B: " + std::to_string(rb.count) + " messages)";
    Finding f{Severity::Warning, "room-collision", ra.jid, ""};
    switch (policy) {
      case CollisionPolicy::Fail:
        f.severity = Severity::Error;
        f.message = "room exists in both sources" + counts +
                    "; choose a --collision-policy (keep-a, keep-b or rename; tc-merge jobs set "
                    "ID --collision-policy ...) or remove one of them, then validate again";
        break;
      case CollisionPolicy::KeepA:
        rb.action = "skip";
        f.message = "room exists in both sources" + counts + "; policy keep-a: B's room and its " +
                    std::to_string(rb.count) + " messages are NOT copied";
        break;
      case CollisionPolicy::KeepB:
        ra.action = "skip";
        f.message = "room exists in both sources" + counts + "; policy keep-b: A's room and its " +
                    std::to_string(ra.count) + " messages are NOT copied";
        break;
      case CollisionPolicy::Rename: {
        rb.action = "rename";
        rb.target_jid = renamed(rb.jid, suffix);
        f.message = "room exists in both sources" + counts + "; policy rename: B's room becomes " +
                    rb.target_jid;
        break;
      }
    }
    if (listed++ < kMaxListed || f.severity == Severity::Error) {
      findings.push_back(std::move(f));
    }
  }
  if (listed > kMaxListed && policy != CollisionPolicy::Fail) {
    findings.push_back({Severity::Warning, "room-collision", "",
                        std::to_string(listed - kMaxListed) + " more collisions resolved by " +
                            std::string(to_string(policy)) + " (not listed)"});
  }
  if (policy == CollisionPolicy::Rename) {
    for (const PlanRoom& r : plan.rooms) {
      if (r.action == "rename" && by_jid.count(to_lower(r.target_jid)) != 0) {
        findings.push_back({Severity::Error, "rename-collision", r.target_jid,
                            "renaming " + r.jid + " to " + r.target_jid +
                                " collides with an existing room; use another --rename-suffix"});
      }
    }
  }

  plan.index();
  // Affiliations: counted, and compared where a room is in both sources.
  std::map<std::pair<std::string, std::string>, std::string> a_affiliations;  // colliding only
  long long disagreements = 0;
  for (Source* s : {&a, &b}) {
    s->each_affiliation([&](SourceAffiliation& aff) {
      const PlanRoom* room = plan.find(s->label(), aff.room_source_jid);
      if (room == nullptr && s->kind() == SourceKind::Vendor) {
        return;  // a room that is not imported (ad-hoc)
      }
      if (room == nullptr || room->action != "skip") {
        ++plan.affiliations;
      }
      const std::string key =
          to_lower(room != nullptr ? room->jid : s->rewriter().apply_jid(aff.room_source_jid));
      if (colliding.count(key) == 0) {
        return;
      }
      const std::pair<std::string, std::string> id{key, to_lower(aff.user_jid)};
      if (s->label() == 'a') {
        a_affiliations[id] = aff.affiliation;
        return;
      }
      const auto it = a_affiliations.find(id);
      if (it == a_affiliations.end() || it->second == aff.affiliation) {
        return;
      }
      const std::string resolution =
          policy == CollisionPolicy::KeepA    ? "A's (" + it->second + ") is kept"
          : policy == CollisionPolicy::KeepB  ? "B's (" + aff.affiliation + ") is kept"
          : policy == CollisionPolicy::Rename ? "each room keeps its own"
                                              : "resolve the room collision first";
      if (disagreements++ < static_cast<long long>(kMaxListed)) {
        findings.push_back({Severity::Warning, "affiliation-conflict", key,
                            aff.user_jid + " is " + it->second + " in A but " + aff.affiliation +
                                " in B; " + resolution});
      }
    });
  }
  if (disagreements > static_cast<long long>(kMaxListed)) {
    findings.push_back({Severity::Warning, "affiliation-conflict", "",
                        std::to_string(disagreements - static_cast<long long>(kMaxListed)) +
                            " more affiliation disagreements (not listed)"});
  }

  // Accounts: the same username in both sources is copied once; differing credentials are
  // reported and the preferred source's (B under keep-b, else A) are kept.
  std::unordered_map<std::string, std::size_t> accounts;  // username -> credential fingerprint
  long long conflicts = 0;
  const std::hash<std::string> hash;
  const auto fingerprint = [&hash](const Row& row) {
    std::string all;
    for (std::size_t i = 1; i < row.size(); ++i) {
      if (i == 9) {
        continue;  // created_at differs between nodes for the same user; not a conflict
      }
      all += row[i].value_or("") + '\x1f';
    }
    return hash(all);
  };
  a.each_account([&](Row& row) {
    accounts.emplace(row[0].value_or(""), fingerprint(row));
    ++plan.accounts_unique;
  });
  b.each_account([&](Row& row) {
    const auto it = accounts.find(row[0].value_or(""));
    if (it == accounts.end()) {
      ++plan.accounts_unique;
      return;
    }
    ++plan.accounts_duplicate;
    if (it->second != fingerprint(row)) {
      if (conflicts++ < static_cast<long long>(kMaxListed)) {
        findings.push_back({Severity::Warning, "account-conflict", row[0].value_or(""),
                            "account exists in both sources with different credentials; " +
                                std::string(policy == CollisionPolicy::KeepB ? "B's" : "A's") +
                                " are kept (the user may need the other password reset)"});
      }
    }
  });
  if (conflicts > static_cast<long long>(kMaxListed)) {
    findings.push_back({Severity::Warning, "account-conflict", "",
                        std::to_string(conflicts - static_cast<long long>(kMaxListed)) +
                            " more account conflicts (not listed)"});
  }
  if (plan.accounts_duplicate > 0) {
    findings.push_back({Severity::Info, "account-duplicate", "",
                        std::to_string(plan.accounts_duplicate) +
                            " accounts exist in both sources and are copied once"});
  }

  // Archive ids: each database numbers its archive from 1, so the ranges overlap.
  long long a_max = 0;
  long long b_max = 0;
  long long a_count = 0;
  long long b_count = 0;
  for (const PlanRoom& r : plan.rooms) {
    if (r.action != "skip") {
      plan.messages += r.count;
      plan.bytes += r.bytes;
      plan.rooms_to_create += r.has_row ? 1 : 0;
    }
    (r.source == 'a' ? a_max : b_max) = std::max(r.source == 'a' ? a_max : b_max, r.max_key);
    (r.source == 'a' ? a_count : b_count) += r.count;
  }
  if (a_count > 0 && b_count > 0) {
    findings.push_back(
        {Severity::Info, "id-renumber", "archive",
         "archive ids overlap (A up to " + std::to_string(a_max) + ", B up to " +
             std::to_string(b_max) +
             "): every message gets a new seq in the target, in the "
             "same order within its room; stanza ids (the MAM ids clients hold) are kept"});
  }
  std::sort(plan.rooms.begin(), plan.rooms.end(), [](const PlanRoom& x, const PlanRoom& y) {
    return std::tie(x.source, x.source_jid) < std::tie(y.source, y.source_jid);
  });
  plan.index();
  return plan;
}

}  // namespace tc::merge
