// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <optional>
#include <string_view>

#include "xmpp/xml_element.h"

namespace tc::xmpp {

/// RFC 6120 §8.3.2 error types.
enum class ErrorType { Auth, Cancel, Continue, Modify, Wait };

/// RFC 6120 §8.3.3 defined stanza error conditions (stream errors are Errc, errc.h).
enum class Condition {
  BadRequest,             ///< §8.3.3.1
  Conflict,               ///< §8.3.3.2
  FeatureNotImplemented,  ///< §8.3.3.3
  Forbidden,              ///< §8.3.3.4
  Gone,                   ///< §8.3.3.5
  InternalServerError,    ///< §8.3.3.6
  ItemNotFound,           ///< §8.3.3.7
  JidMalformed,           ///< §8.3.3.8
  NotAcceptable,          ///< §8.3.3.9
  NotAllowed,             ///< §8.3.3.10
  NotAuthorized,          ///< §8.3.3.11
  PolicyViolation,        ///< §8.3.3.12
  RecipientUnavailable,   ///< §8.3.3.13
  Redirect,               ///< §8.3.3.14
  RegistrationRequired,   ///< §8.3.3.15
  RemoteServerNotFound,   ///< §8.3.3.16
  RemoteServerTimeout,    ///< §8.3.3.17
  ResourceConstraint,     ///< §8.3.3.18
  ServiceUnavailable,     ///< §8.3.3.19
  SubscriptionRequired,   ///< §8.3.3.20
  UndefinedCondition,     ///< §8.3.3.21
  UnexpectedRequest,      ///< §8.3.3.22
};

/// "auth", "cancel", "continue", "modify", "wait".
std::string_view error_type_name(ErrorType type) noexcept;
std::optional<ErrorType> parse_error_type(std::string_view name) noexcept;
/// The condition's element name ("item-not-found").
std::string_view condition_name(Condition condition) noexcept;
std::optional<Condition> parse_condition(std::string_view name) noexcept;
/// The type RFC 6120 §8.3.3 gives the condition in its example (cancel for item-not-found,
/// wait for resource-constraint, ...).
ErrorType default_error_type(Condition condition) noexcept;

/// What a stanza error says: a defined condition and its type. Built from a condition alone
/// it takes the RFC's type for it; `{ErrorType::Wait, Condition::InternalServerError}` says
/// otherwise.
struct StanzaError {
  // Implicit: a condition alone reads as its error, with the RFC's type.
  StanzaError(Condition c) noexcept : type(default_error_type(c)), condition(c) {}
  StanzaError(ErrorType t, Condition c) noexcept : type(t), condition(c) {}

  ErrorType type;
  Condition condition;

  friend bool operator==(const StanzaError&, const StanzaError&) = default;
};

/// The <error/> element (RFC 6120 §8.3.2) in jabber:client: type='...', then 'by' when not
/// empty, the condition, and a <text/> when `text` is not empty.
XmlElement make_error_element(const StanzaError& error, std::string_view text = {},
                              std::string_view by = {});

}  // namespace tc::xmpp
