// SPDX-License-Identifier: Apache-2.0
#include "muc/types.h"

namespace tc::broker::muc {

std::string_view role_name(Role role) {
  switch (role) {
    case Role::None:
      return "none";
    case Role::Visitor:
      return "visitor";
    case Role::Participant:
      return "participant";
    case Role::Moderator:
      return "moderator";
  }
  return "none";
}

std::optional<Role> parse_role(std::string_view name) {
  if (name == "none") {
    return Role::None;
  }
  if (name == "visitor") {
    return Role::Visitor;
  }
  if (name == "participant") {
    return Role::Participant;
  }
  if (name == "moderator") {
    return Role::Moderator;
  }
  return std::nullopt;
}

std::string_view affiliation_name(Affiliation affiliation) {
  switch (affiliation) {
    case Affiliation::None:
      return "none";
    case Affiliation::Outcast:
      return "outcast";
    case Affiliation::Member:
      return "member";
    case Affiliation::Admin:
      return "admin";
    case Affiliation::Owner:
      return "owner";
  }
  return "none";
}

std::optional<Affiliation> parse_affiliation(std::string_view name) {
  for (auto a : {Affiliation::None, Affiliation::Outcast, Affiliation::Member, Affiliation::Admin,
                 Affiliation::Owner}) {
    if (affiliation_name(a) == name) {
      return a;
    }
  }
  return std::nullopt;
}

}  // namespace tc::broker::muc
