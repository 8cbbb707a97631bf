// SPDX-License-Identifier: Apache-2.0
#include "storage/errc.h"

#include <string>

namespace tc::storage {
namespace {

// boost::system::error_category has a protected non-virtual destructor by design (categories
// are never deleted through a base pointer); GCC's -Wnon-virtual-dtor cannot tell.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class StorageCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "storage"; }

  std::string message(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::Ok:
        return "success";
      case Errc::NotFound:
        return "not found";
      case Errc::AlreadyExists:
        return "already exists";
      case Errc::Unavailable:
        return "database unavailable (connection lost or refused)";
      case Errc::QueryFailed:
        return "the database refused a statement";
      case Errc::SchemaTooNew:
        return "database schema is newer than this build supports";
      case Errc::SchemaMismatch:
        return "database holds tables that are not a recognised tcbroker schema";
      case Errc::BadUrl:
        return "store URL not understood";
      case Errc::StaleEpoch:
        return "write fenced: the writer no longer holds the lease";
      case Errc::Unsupported:
        return "storage backend not built in";
    }
    return "unknown storage error " + std::to_string(value);
  }
};
#pragma GCC diagnostic pop

}  // namespace

const boost::system::error_category& storage_category() noexcept {
  static const StorageCategory category;
  return category;
}

}  // namespace tc::storage
