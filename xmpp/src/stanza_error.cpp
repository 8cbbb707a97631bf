// SPDX-License-Identifier: Apache-2.0
#include "xmpp/stanza_error.h"

#include <array>
#include <string>

#include "xmpp/namespaces.h"

namespace tc::xmpp {
namespace {

struct ConditionInfo {
  Condition condition;
  std::string_view name;
  ErrorType type;  // as in the RFC's example
};

constexpr std::array<ConditionInfo, 22> kConditions{{
    {Condition::BadRequest, "bad-request", ErrorType::Modify},
    {Condition::Conflict, "conflict", ErrorType::Cancel},
    {Condition::FeatureNotImplemented, "feature-not-implemented", ErrorType::Cancel},
    {Condition::Forbidden, "forbidden", ErrorType::Auth},
    {Condition::Gone, "gone", ErrorType::Cancel},
    {Condition::InternalServerError, "internal-server-error", ErrorType::Cancel},
    {Condition::ItemNotFound, "item-not-found", ErrorType::Cancel},
    {Condition::JidMalformed, "jid-malformed", ErrorType::Modify},
    {Condition::NotAcceptable, "not-acceptable", ErrorType::Modify},
    {Condition::NotAllowed, "not-allowed", ErrorType::Cancel},
    {Condition::NotAuthorized, "not-authorized", ErrorType::Auth},
    {Condition::PolicyViolation, "policy-violation", ErrorType::Modify},
    {Condition::RecipientUnavailable, "recipient-unavailable", ErrorType::Wait},
    {Condition::Redirect, "redirect", ErrorType::Modify},
    {Condition::RegistrationRequired, "registration-required", ErrorType::Auth},
    {Condition::RemoteServerNotFound, "remote-server-not-found", ErrorType::Cancel},
    {Condition::RemoteServerTimeout, "remote-server-timeout", ErrorType::Wait},
    {Condition::ResourceConstraint, "resource-constraint", ErrorType::Wait},
    {Condition::ServiceUnavailable, "service-unavailable", ErrorType::Cancel},
    {Condition::SubscriptionRequired, "subscription-required", ErrorType::Auth},
    {Condition::UndefinedCondition, "undefined-condition", ErrorType::Modify},
    {Condition::UnexpectedRequest, "unexpected-request", ErrorType::Wait},
}};

const ConditionInfo& info(Condition condition) noexcept {
  const auto i = static_cast<std::size_t>(condition);
  return i < kConditions.size()
             ? kConditions[i]
             : kConditions[static_cast<std::size_t>(Condition::UndefinedCondition)];
}

constexpr std::array<std::string_view, 5> kTypes{"auth", "cancel", "continue", "modify", "wait"};

}  // namespace

std::string_view error_type_name(ErrorType type) noexcept {
  const auto i = static_cast<std::size_t>(type);
  return i < kTypes.size() ? kTypes[i] : "cancel";
}

std::optional<ErrorType> parse_error_type(std::string_view name) noexcept {
  for (std::size_t i = 0; i < kTypes.size(); ++i) {
    if (kTypes[i] == name) {
      return static_cast<ErrorType>(i);
    }
  }
  return std::nullopt;
}

std::string_view condition_name(Condition condition) noexcept {
  return info(condition).name;
}

std::optional<Condition> parse_condition(std::string_view name) noexcept {
  for (const auto& c : kConditions) {
    if (c.name == name) {
      return c.condition;
    }
  }
  return std::nullopt;
}

ErrorType default_error_type(Condition condition) noexcept {
  return info(condition).type;
}

XmlElement make_error_element(const StanzaError& error, std::string_view text,
                              std::string_view by) {
  XmlElement e("error", ns::kClient);
  e.set_attr("type", std::string(error_type_name(error.type)));
  if (!by.empty()) {
    e.set_attr("by", std::string(by));
  }
  e.add_child(std::string(condition_name(error.condition)), ns::kStanzaErrors);
  if (!text.empty()) {
    e.add_child("text", ns::kStanzaErrors).add_text(std::string(text));
  }
  return e;
}

}  // namespace tc::xmpp
