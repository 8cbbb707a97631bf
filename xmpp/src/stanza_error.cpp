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
  ErrorType type;   // as in the RFC's example
  int legacy_code;  // XEP-0086
};

constexpr std::array<ConditionInfo, 22> kConditions{{
    {Condition::BadRequest, "bad-request", ErrorType::Modify, 400},
    {Condition::Conflict, "conflict", ErrorType::Cancel, 409},
    {Condition::FeatureNotImplemented, "feature-not-implemented", ErrorType::Cancel, 501},
    {Condition::Forbidden, "forbidden", ErrorType::Auth, 403},
    {Condition::Gone, "gone", ErrorType::Cancel, 302},
    {Condition::InternalServerError, "internal-server-error", ErrorType::Cancel, 500},
    {Condition::ItemNotFound, "item-not-found", ErrorType::Cancel, 404},
    {Condition::JidMalformed, "jid-malformed", ErrorType::Modify, 400},
    {Condition::NotAcceptable, "not-acceptable", ErrorType::Modify, 406},
    {Condition::NotAllowed, "not-allowed", ErrorType::Cancel, 405},
    {Condition::NotAuthorized, "not-authorized", ErrorType::Auth, 401},
    {Condition::PolicyViolation, "policy-violation", ErrorType::Modify, 406},
    {Condition::RecipientUnavailable, "recipient-unavailable", ErrorType::Wait, 404},
    {Condition::Redirect, "redirect", ErrorType::Modify, 302},
    {Condition::RegistrationRequired, "registration-required", ErrorType::Auth, 407},
    {Condition::RemoteServerNotFound, "remote-server-not-found", ErrorType::Cancel, 404},
    {Condition::RemoteServerTimeout, "remote-server-timeout", ErrorType::Wait, 504},
    {Condition::ResourceConstraint, "resource-constraint", ErrorType::Wait, 500},
    {Condition::ServiceUnavailable, "service-unavailable", ErrorType::Cancel, 503},
    {Condition::SubscriptionRequired, "subscription-required", ErrorType::Auth, 407},
    {Condition::UndefinedCondition, "undefined-condition", ErrorType::Modify, 500},
    {Condition::UnexpectedRequest, "unexpected-request", ErrorType::Wait, 400},
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
  // XEP-0086: the legacy code beside the condition; some clients (profanity's OMEMO) still
  // read only it.
  e.set_attr("code", std::to_string(info(error.condition).legacy_code));
  e.add_child(std::string(condition_name(error.condition)), ns::kStanzaErrors);
  if (!text.empty()) {
    e.add_child("text", ns::kStanzaErrors).add_text(std::string(text));
  }
  return e;
}

}  // namespace tc::xmpp
