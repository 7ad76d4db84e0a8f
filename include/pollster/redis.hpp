// SPDX-License-Identifier: MIT
#pragma once

// pollster on Redis, for more than one process (optional: link pollster::redis, which needs hiredis): a budget the
// whole fleet shares (redis_budget.hpp), a watch set split across worker processes (redis_work.hpp) and events for
// consumers in other processes (redis_stream.hpp), over one small client (redis_client.hpp).

#include "redis_budget.hpp"
#include "redis_client.hpp"
#include "redis_stream.hpp"
#include "redis_work.hpp"
