// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <compare>
#include <string>
#include <string_view>

#include "base/result.h"

namespace tc::xmpp {

/// A validated, normalised JID (RFC 7622): localpart (nodeprep), domainpart (nameprep,
/// lower case, no trailing dot) and resourcepart (resourceprep), each at most 1023 bytes.
/// Only parse() makes non-empty JIDs, so every Jid you hold is valid.
class Jid {
 public:
  Jid() = default;

  /// Parses and normalises. Fails with Errc::JidMalformed. Never throws.
  static Result<Jid> parse(std::string_view text);
  /// Builds from parts, normalising each. Empty local/resource mean "absent".
  static Result<Jid> from_parts(std::string_view local, std::string_view domain,
                                std::string_view resource = {});

  const std::string& local() const { return local_; }
  const std::string& domain() const { return domain_; }
  const std::string& resource() const { return resource_; }
  bool empty() const { return domain_.empty(); }
  bool is_bare() const { return resource_.empty(); }

  /// The JID without its resource.
  Jid bare() const;
  /// This JID with another (normalised) resource. Errc::JidMalformed for a bad resource.
  Result<Jid> with_resource(std::string_view resource) const;

  /// "local@domain/resource" with absent parts left out.
  std::string str() const;
  /// "local@domain" (or "domain").
  std::string bare_str() const;

  // NOLINTNEXTLINE(modernize-use-nullptr): clang-tidy 14 misreads a defaulted <=>
  friend auto operator<=>(const Jid&, const Jid&) = default;
  friend bool operator==(const Jid&, const Jid&) = default;

 private:
  std::string local_;
  std::string domain_;
  std::string resource_;
};

/// Individual profiles, for usernames and nicknames. Fail with Errc::JidMalformed.
Result<std::string> nodeprep(std::string_view in);
Result<std::string> nameprep(std::string_view in);
Result<std::string> resourceprep(std::string_view in);
/// SASLprep (RFC 4013) for passwords and SASL usernames. Fails with Errc::MalformedRequest.
Result<std::string> saslprep(std::string_view in);

}  // namespace tc::xmpp
