// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "storage/records.h"

namespace tc::broker::muc {

/// XEP-0045 §5.1 roles (affiliations are storage::Affiliation, since they are persisted).
enum class Role { None, Visitor, Participant, Moderator };
using storage::Affiliation;

std::string_view role_name(Role role);
std::optional<Role> parse_role(std::string_view name);
std::string_view affiliation_name(Affiliation affiliation);
std::optional<Affiliation> parse_affiliation(std::string_view name);

/// Signals that the handling of one client stanza is finished (for XEP-0198 counting and the
/// durability rule). Move-only and call-once; one that is dropped uncalled fires on
/// destruction, so that no session can wait forever on a lost completion.
class Completion {
 public:
  Completion() = default;
  template <class F>
  explicit Completion(F f) : impl_(std::make_unique<Model<F>>(std::move(f))) {}
  Completion(Completion&&) noexcept = default;
  Completion& operator=(Completion&& other) noexcept {
    if (this != &other) {
      (*this)();
      impl_ = std::move(other.impl_);
    }
    return *this;
  }
  Completion(const Completion&) = delete;
  Completion& operator=(const Completion&) = delete;
  ~Completion() { (*this)(); }

  void operator()() {
    if (auto impl = std::move(impl_)) {
      impl->call();
    }
  }

 private:
  struct Concept {
    virtual ~Concept() = default;
    virtual void call() = 0;
  };
  template <class F>
  struct Model final : Concept {
    explicit Model(F fn) : f(std::move(fn)) {}
    void call() override { f(); }
    F f;
  };
  std::unique_ptr<Concept> impl_;
};

}  // namespace tc::broker::muc
