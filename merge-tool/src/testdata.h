// SPDX-License-Identifier: Apache-2.0
// `tc-merge testdata`: two legacy per-node databases with realistic content.
#pragma once

#include <cstdio>
#include <string>

namespace tc::merge {

struct TestdataOptions {
  std::string url_a;
  std::string url_b;
  std::string kind = "tc";     ///< "tc" (our schema) or "vendor" (TC_ROOMS ... tables)
  int rooms = 200;             ///< per database
  long long messages = 10000;  ///< per database
  int collisions = 0;          ///< rooms with the same JID in both databases
  int accounts = 50;           ///< per database; a third of them in both
  int large_every = 500;       ///< every Nth message has a large (~70 kB) body; 0 = none
  unsigned seed = 1;
  std::string domain = "conference.localhost";  ///< tc: MUC domain of the rooms
  std::string user_domain = "localhost";
  std::string alias_a = "conference-1-clustera.example.com";  ///< vendor: chat-node aliases
  std::string alias_b = "conference-2-clustera.example.com";
};

/// Creates the schema (tc: through storage's migrations) and fills both databases. The
/// databases must be empty. Returns 0, or 2 with a message on `out`.
int generate_testdata(const TestdataOptions& options, std::FILE* out);

}  // namespace tc::merge
