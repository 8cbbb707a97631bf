// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdio>
#include <cstdlib>

// TC_ASSERT checks an invariant of ours in debug builds only. Never use it on input.
// TC_CHECK is always on and fatal: for states that cannot be continued safely.
#define TC_CHECK(cond, why)                                                                   \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::fprintf(stderr, "%s:%d: check failed: %s (%s)\n", __FILE__, __LINE__, #cond, why); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (false)

#ifdef NDEBUG
#define TC_ASSERT(cond, why) \
  do {                       \
    (void)sizeof(cond);      \
  } while (false)
#else
#define TC_ASSERT(cond, why) TC_CHECK(cond, why)
#endif
