// SPDX-License-Identifier: MIT
#pragma once

// The umbrella header: every layer of pollster, none of the optional integrations (fmt.hpp, asio.hpp), so
// including it never pulls in a dependency beyond the standard library.

#include "version.hpp"
#include "clock.hpp"
#include "schedule.hpp"
#include "stop.hpp"
#include "poll.hpp"
#include "runner.hpp"
#include "diff.hpp"
#include "snapshot.hpp"
#include "watch.hpp"  // await_operation (await.hpp) and watcher
#include "subscription.hpp"  // subscriptions on a watch: filters, at-least-once delivery, CloudEvents envelopes
#include "redelivery.hpp"    // the subscriptions' redelivery on a runner
