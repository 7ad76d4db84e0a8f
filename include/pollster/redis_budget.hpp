// SPDX-License-Identifier: MIT
#pragma once

// A request budget shared by every process of a fleet, kept in Redis (optional: link pollster::redis).
//
// The algorithm is GCRA, as in brandur/redis-cell and go-redis/redis_rate (whose Lua script comes from
// rwz/redis-gcra): one number per budget, the theoretical arrival time (TAT), moved by one emission interval
// T = 1/rate per token; a token is allowed at `now` when `max(TAT, now) + T - burst * T <= now`. It runs in ONE Lua
// script, atomically, on Redis' own clock (`TIME` inside the script: client clocks do not matter; tests pass the
// time as an argument instead and check the script against a reference model in virtual time). Where it differs:
//  * times are integer microseconds and the decision is exact. redis_rate's AllowN rounds `remaining` to the nearest
//    integer (`floor(diff / T + 0.5)`), which lets a request through up to half an interval early
//    (Losant/redis-gcra#3 reports the effect); redis-cell compares whole seconds (`diff.num_seconds() < 0`), so a
//    request less than a second early passes.
//  * a round trip takes a LEASE of up to `lease` tokens, like redis_rate's AllowAtMost, but each token carries its
//    own time: the script grants the next GCRA cells whose times lie within `horizon` of now, and the process spends
//    each one no earlier than its time (mapped to its own clock when the reply arrives, so never early). Leases
//    therefore cost round trips, not accuracy: whatever the lease size and the number of processes, the fleet sends
//    at most `rate * (W + hold + rtt) + burst` requests in any window W, where `hold` is how long a token stays
//    usable after its time (one interval by default: a token not spent by then is dropped) and `rtt` the spread of
//    the processes' reply delays (which only ever delay a token). What a lease does cost: a process may hold up to
//    `lease` tokens (`horizon` ahead) that another process could have used, and tokens it reserved and then did not
//    need are wasted unless it hands them back (it does, when its pollers stop asking, if no other process reserved
//    after it; see `redis_budget_stats::wasted`). With P processes all saturated, one poller may wait up to about
//    P * lease intervals for its process's next lease. A lease of 1 is a round trip per check.
//  * throttling is shared: a check that says "rate limited" cuts the fleet's rate in the same script (cut by
//    `throttle_factor`, climbing back to `rate` over `recovery`, as the local bucket does), and every process reads
//    the rate in force from Redis at its next lease; a process drops the tokens it holds when one of its own checks
//    is throttled, and others spend at most the tokens they already hold (up to `lease` each) at the old spacing.
//
// The runner must never wait on Redis: `redis_budget` answers try_acquire from the tokens it holds, and a thread of
// its own (its own connection) fetches leases ahead of need, wakes the runner when they arrive (budget_group's
// on_wake), hands back tokens it will not use, and reports throttles. When Redis cannot be reached (connect or
// command timeout), it falls back at once to a local token bucket at a documented share of the rate,
// rate / max(expected_processes, processes seen in Redis lately), so the fleet as a whole stays within the limit
// when every process loses Redis together; it keeps trying to reconnect with a pollster schedule (exponential
// backoff, full jitter) and returns to the shared budget when Redis answers. A partial partition, where some
// processes still reach Redis and others do not, can exceed the limit by the cut-off processes' shares.

#include "clock.hpp"
#include "detail/config.hpp"
#include "detail/saturate.hpp"
#include "detail/text.hpp"
#include "rate.hpp"
#include "redis_client.hpp"
#include "schedule.hpp"

#include <unistd.h>  // gethostname, getpid

#include <algorithm>           // max, min
#include <atomic>              // atomic
#include <chrono>              // microseconds, duration_cast
#include <cmath>               // floor, isfinite
#include <condition_variable>  // condition_variable
#include <cstdint>             // int64_t, uint32_t, uint64_t
#include <deque>               // deque
#include <functional>          // function
#include <mutex>               // mutex, unique_lock, lock_guard
#include <optional>            // optional
#include <random>              // random_device
#include <string>              // string, to_string
#include <thread>              // thread
#include <utility>             // move
#include <vector>              // vector

POLLSTER_NAMESPACE_BEGIN

/// Named parameters of a fleet budget (C++20: `{.limits = {.rate = 20}, .key = "api:compute", .lease = 8}`).
struct redis_budget_options {
  /// The fleet's limit, for all processes together: rate, burst, throttle_factor, min_rate, recovery. Every process
  /// sharing `key` must use the same numbers. (`max_in_flight` stays per process: it limits this runner's checks.)
  budget_options limits{};
  std::string key = "pollster:budget";  ///< the GCRA state's key; processes that share it share the budget
  std::uint32_t lease = 8;              ///< tokens asked for per round trip, at most (1: a round trip per check)
  /// How far ahead a lease may reach (0: room for a full lease per process, lease * processes intervals at `rate`).
  duration horizon = duration::zero();
  duration hold = duration::zero();     ///< how long a token stays usable after its time (0: one interval at `rate`)
  /// The local share while Redis is unreachable is rate / max(expected_processes, processes seen in Redis lately).
  std::uint32_t expected_processes = 1;
  duration member_ttl = std::chrono::seconds(10);  ///< a process counts as seen this long after its last round trip
  duration reconnect_base = std::chrono::milliseconds(50);  ///< reconnect backoff: exponential, full jitter,
  duration reconnect_cap = std::chrono::seconds(2);         ///< from base, doubling, capped here
  std::string member;  ///< this process's name among the members (empty: host, pid and a random number)
  redis_options redis{};
};

/// What a fleet budget has done (redis_budget::stats; also from any thread).
struct redis_budget_stats {
  std::uint64_t granted = 0;          ///< tokens given to checks
  std::uint64_t from_fallback = 0;    ///< of which, from the local share while Redis was unreachable
  std::uint64_t leased = 0;           ///< tokens Redis granted this process
  std::uint64_t round_trips = 0;      ///< scripts run (leases, heartbeats, throttles, hand-backs)
  std::uint64_t wasted = 0;           ///< leased tokens never spent (past their hold, dropped on a throttle)
  std::uint64_t handed_back = 0;      ///< leased tokens given back to the fleet unspent
  std::uint64_t held = 0;             ///< leased tokens held now (leased = granted - from_fallback + wasted +
                                      ///< handed_back + held)
  std::uint64_t throttles = 0;        ///< throttle signals from this process's checks
  std::uint64_t fallbacks = 0;        ///< times Redis became unreachable
  std::uint64_t reconnects = 0;       ///< connections made (the first included)
  std::uint32_t members_seen = 0;     ///< processes sharing the budget, as Redis last said
  double rate = 0;                    ///< the fleet's rate in force, as Redis last said (or the local share's)
  bool connected = false;             ///< false while falling back to the local share
  std::string last_error;             ///< why Redis was last unreachable
};

namespace detail {
// One script for every operation, so the state's layout lives in one place. Times are integer microseconds.
//   KEYS[1] the state (a hash: tat, cut_rate, cut_at, throttles); KEYS[2] the members (a sorted set)
//   ARGV[1] op: reserve | throttle | release;   ARGV[2] now ('' : Redis' TIME)
//   ARGV[3..7] rate, burst, throttle_factor, min_rate, recovery
//   reserve: ARGV[8] want, ARGV[9] horizon, ARGV[10] member ('' : none), ARGV[11] member_ttl
//            -> {granted, now, base, interval, tat, rate in milli-requests per second, throttles, members, retry_at}
//            (token i, from 0, is usable from max(now, base + (i + 1 - burst) * interval); retry_at: when the next
//            token will lie within the horizon)
//   throttle: -> {throttles, the cut rate in milli-requests per second, tat}
//   release: ARGV[8] lease_end, ARGV[9] return_to -> 1 when the TAT was still the lease's end and went back, else 0
inline const char* gcra_script() {
  return R"lua(
local op = ARGV[1]
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[2])
end
local rate = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local factor = tonumber(ARGV[5])
local min_rate = tonumber(ARGV[6])
local recovery = tonumber(ARGV[7])
local state = redis.call('HMGET', KEYS[1], 'tat', 'cut_rate', 'cut_at', 'throttles')
local tat = tonumber(state[1])
local cut_rate = tonumber(state[2])
local cut_at = tonumber(state[3])
local throttles = tonumber(state[4]) or 0

local function rate_at(t)
  if cut_rate == nil or t >= cut_at + recovery then return rate end
  local progress = 0
  if t > cut_at then progress = (t - cut_at) / recovery end
  return math.min(rate, cut_rate + (rate - cut_rate) * progress)
end
local function interval_at(t)
  return math.max(1, math.floor(1000000 / rate_at(t) + 0.5))
end
local function save()
  local live_until = now
  if tat ~= nil and tat > live_until then live_until = tat end
  if cut_rate ~= nil and cut_at + recovery > live_until then live_until = cut_at + recovery end
  local fields = {'tat', string.format('%.0f', tat or now), 'throttles', string.format('%.0f', throttles)}
  if cut_rate ~= nil then
    table.insert(fields, 'cut_rate')
    table.insert(fields, string.format('%.17g', cut_rate))
    table.insert(fields, 'cut_at')
    table.insert(fields, string.format('%.0f', cut_at))
  end
  redis.call('HSET', KEYS[1], unpack(fields))
  -- Past the TAT and the recovery the state means nothing: a fresh one is the same budget.
  redis.call('PEXPIRE', KEYS[1], math.floor((live_until - now) / 1000) + 60000)
end

if op == 'reserve' then
  local want = tonumber(ARGV[8])
  local horizon = tonumber(ARGV[9])
  local interval = interval_at(now)
  local base = now
  if tat ~= nil and tat > now then base = tat end
  local fit = math.floor((now + horizon - base + burst * interval) / interval)
  local granted = math.max(0, math.min(want, fit))
  if granted > 0 then
    tat = base + granted * interval
    save()
  end
  local members = 0
  if ARGV[10] ~= '' then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', now))
    redis.call('ZADD', KEYS[2], string.format('%.0f', now + tonumber(ARGV[11])), ARGV[10])
    redis.call('PEXPIRE', KEYS[2], math.floor(tonumber(ARGV[11]) / 1000) + 1000)
    members = redis.call('ZCARD', KEYS[2])
  end
  local next_base = tat or now
  if next_base < now then next_base = now end
  local retry_at = next_base + interval - burst * interval - horizon
  return {granted, now, base, interval, tat or now, math.floor(rate_at(now) * 1000 + 0.5), throttles, members,
          retry_at}
elseif op == 'throttle' then
  local cut = math.max(min_rate, rate_at(now) * factor)
  cut_rate = cut
  cut_at = now
  throttles = throttles + 1
  local floor_tat = now + interval_at(now) * burst
  if tat == nil or tat < floor_tat then tat = floor_tat end
  save()
  return {throttles, math.floor(cut * 1000 + 0.5), tat}
elseif op == 'release' then
  local lease_end = tonumber(ARGV[8])
  local return_to = tonumber(ARGV[9])
  if tat ~= nil and tat == lease_end and return_to < tat then
    tat = return_to
    save()
    return 1
  end
  return 0
end
return redis.error_reply('pollster gcra: unknown op ' .. tostring(op))
)lua";
}

inline std::string number_arg(double v) { return number_text(v); }
inline std::int64_t to_micros(duration d) noexcept {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}
inline duration from_micros(std::int64_t us) noexcept {
  const duration unit{std::chrono::microseconds{1}};
  if (us >= 0) return sat_mul(unit, static_cast<std::uint64_t>(us));
  // Negative: the same magnitude, saturating at duration::min() (-(us + 1) cannot overflow).
  const duration magnitude = sat_mul(unit, static_cast<std::uint64_t>(-(us + 1)));
  return magnitude == duration::max() ? duration::min() : sat_sub(-magnitude, unit);
}
inline std::string default_member() {
  char host[128] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::random_device random;
  return std::string(host) + "-" + std::to_string(::getpid()) + "-" + std::to_string(random());
}
}  // namespace detail

/// One lease: the tokens Redis granted in one round trip, in Redis' time (microseconds).
struct gcra_lease {
  std::uint32_t granted = 0;
  std::int64_t now = 0;       ///< Redis' time when it ran the script
  std::int64_t base = 0;      ///< max(TAT, now) before the lease
  std::int64_t interval = 0;  ///< the emission interval in force
  std::int64_t tat = 0;       ///< the TAT after the lease (its end: a hand-back names it)
  double rate = 0;            ///< the fleet's rate in force
  std::uint64_t throttles = 0;
  std::uint32_t members = 0;  ///< processes seen lately (0 when no member was given)
  std::int64_t retry_at = 0;  ///< when the next token will lie within the horizon
  std::uint64_t burst = 1;
  /// When token `i` (from 0) may be spent, in Redis' time.
  std::int64_t token_at(std::uint32_t i) const noexcept {
    const std::int64_t conforms =
        base + (static_cast<std::int64_t>(i) + 1 - static_cast<std::int64_t>(burst)) * interval;
    return std::max(now, conforms);
  }
};

/// The GCRA script, run synchronously on a connection of the caller's: what redis_budget's thread does, and what
/// the tests check against a model. `now` (microseconds) replaces Redis' clock when given.
class redis_gcra {
 public:
  redis_gcra(budget_options limits, std::string key) : limits_(limits), key_(std::move(key)), script_(detail::gcra_script()) {
    token_bucket check{limits};  // the same rules as the local bucket (rate, burst, factor, min_rate, recovery)
    limits_ = check.options();   // (min_rate 0 becomes rate / 100 there, as here)
    if (key_.empty()) detail::throw_invalid("redis_gcra", "key", "not empty", "\"\"");
  }

  gcra_lease reserve(redis_connection& c, std::uint32_t want, duration horizon, const std::string& member = {},
                     duration member_ttl = std::chrono::seconds(10), std::optional<std::int64_t> now = {}) {
    std::vector<std::string> args = common("reserve", now);
    args.push_back(std::to_string(want));
    args.push_back(std::to_string(detail::to_micros(horizon)));
    args.push_back(member);
    args.push_back(std::to_string(detail::to_micros(member_ttl)));
    const redis_value reply = script_.run(c, keys(), args);
    const std::vector<redis_value>& r = reply.as_array();
    if (r.size() < 9) throw redis_error(redis_error::kind::reply, "pollster: unexpected GCRA reply");
    gcra_lease l;
    l.granted = static_cast<std::uint32_t>(r[0].as_integer());
    l.now = r[1].as_integer();
    l.base = r[2].as_integer();
    l.interval = r[3].as_integer();
    l.tat = r[4].as_integer();
    l.rate = static_cast<double>(r[5].as_integer()) / 1000.0;
    l.throttles = static_cast<std::uint64_t>(r[6].as_integer());
    l.members = static_cast<std::uint32_t>(r[7].as_integer());
    l.retry_at = r[8].as_integer();
    l.burst = limits_.burst;
    return l;
  }
  /// Cuts the fleet's rate; returns the rate in force after the cut.
  double throttle(redis_connection& c, std::optional<std::int64_t> now = {}) {
    const redis_value reply = script_.run(c, keys(), common("throttle", now));
    const std::vector<redis_value>& r = reply.as_array();
    if (r.size() < 3) throw redis_error(redis_error::kind::reply, "pollster: unexpected GCRA reply");
    return static_cast<double>(r[1].as_integer()) / 1000.0;
  }
  /// Gives back the end of a lease: true when no one reserved after it (the TAT was still `lease_end`).
  bool release(redis_connection& c, std::int64_t lease_end, std::int64_t return_to, std::optional<std::int64_t> now = {}) {
    std::vector<std::string> args = common("release", now);
    args.push_back(std::to_string(lease_end));
    args.push_back(std::to_string(return_to));
    return script_.run(c, keys(), args).as_integer() == 1;
  }

  const budget_options& limits() const noexcept { return limits_; }
  const std::string& key() const noexcept { return key_; }

 private:
  std::vector<std::string> keys() const { return {key_, key_ + ":members"}; }
  std::vector<std::string> common(const char* op, std::optional<std::int64_t> now) const {
    return {op,
            now ? std::to_string(*now) : std::string(),
            detail::number_arg(limits_.rate),
            std::to_string(limits_.burst),
            detail::number_arg(limits_.throttle_factor),
            detail::number_arg(limits_.min_rate),
            std::to_string(detail::to_micros(limits_.recovery))};
  }

  budget_options limits_;
  std::string key_;
  redis_script script_;
};

/// A runner's budget group shared by every process that names the same key (see the top of this header). `Clock` is
/// the runner's: its time must pass as real time does (the steady clock).
template <class Clock = steady_clock>
class redis_budget final : public budget_group {
 public:
  redis_budget(Clock& clock, redis_budget_options options)
      : clock_(clock), options_(std::move(options)), gcra_(options_.limits, options_.key) {
    const budget_options& l = gcra_.limits();
    if (options_.lease == 0) detail::throw_invalid("redis_budget", "lease", ">= 1", "0");
    if (options_.expected_processes == 0) detail::throw_invalid("redis_budget", "expected_processes", ">= 1", "0");
    if (options_.horizon < duration::zero()) {
      detail::throw_invalid("redis_budget", "horizon", ">= 0", detail::duration_text(options_.horizon));
    }
    if (options_.hold < duration::zero()) {
      detail::throw_invalid("redis_budget", "hold", ">= 0", detail::duration_text(options_.hold));
    }
    if (options_.member_ttl <= duration::zero()) {
      detail::throw_invalid("redis_budget", "member_ttl", "> 0", detail::duration_text(options_.member_ttl));
    }
    if (options_.reconnect_base <= duration::zero() || options_.reconnect_cap < options_.reconnect_base) {
      detail::throw_invalid("redis_budget", "reconnect_base", "> 0 and <= reconnect_cap",
                            detail::duration_text(options_.reconnect_base));
    }
    interval_ = detail::from_double_ns(1e9 / l.rate);
    if (options_.hold == duration::zero()) options_.hold = interval_;
    if (options_.member.empty()) options_.member = detail::default_member();
    rate_now_ = l.rate;
    thread_ = std::thread([this] { loop(); });
  }
  redis_budget(const redis_budget&) = delete;
  redis_budget& operator=(const redis_budget&) = delete;
  /// Stops the background thread (it hands back the tokens it holds and will not spend, if it can).
  ~redis_budget() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    signal_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  bool try_acquire(duration now) override {
    std::lock_guard<std::mutex> lock(mutex_);
    drop_expired(now);
    bool ok = false;
    if (!tokens_.empty() && tokens_.front() <= now) {
      tokens_.pop_front();
      ok = true;
    } else if (fallback_ && fallback_bucket_ && fallback_bucket_->try_acquire(now)) {
      ++stats_.from_fallback;
      ok = true;
    }
    idle_ = false;
    if (ok) {
      ++stats_.granted;
      granted_.store(stats_.granted, std::memory_order_relaxed);
      last_grant_ = now;
      waiting_ = false;
      if (tokens_.size() < low_water() && !fallback_) ask();  // fetch the next lease before these run out
      return true;
    }
    waiting_ = true;
    ask();
    return false;
  }

  duration next_available(duration now) const override {
    std::lock_guard<std::mutex> lock(mutex_);
    duration best = duration::max();
    for (const duration at : tokens_) {
      if (detail::sat_add(at, options_.hold) < now) continue;  // expired: try_acquire drops it
      best = std::max(now, at);
      break;
    }
    if (fallback_ && fallback_bucket_) best = std::min(best, fallback_bucket_->next_available(now));
    return best;
  }

  void throttled(duration now) override {
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.throttles;
    throttles_.store(stats_.throttles, std::memory_order_relaxed);
    stats_.wasted += tokens_.size();  // reserved at the old spacing: the server is overloaded now
    tokens_.clear();
    last_lease_.reset();
    if (fallback_bucket_) fallback_bucket_->throttled(now);
    throttle_pending_ = true;
    ask();
  }

  std::size_t in_flight_limit() const noexcept override { return options_.limits.max_in_flight; }
  void on_wake(std::function<void()> wake) override {
    std::lock_guard<std::mutex> lock(mutex_);
    wake_ = std::move(wake);
  }
  std::uint64_t granted() const noexcept override { return granted_.load(std::memory_order_relaxed); }
  std::uint64_t throttles() const noexcept override { return throttles_.load(std::memory_order_relaxed); }
  double rate_at(duration now) const override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (fallback_ && fallback_bucket_) return fallback_bucket_->rate_at(now);
    return rate_now_;
  }

  redis_budget_stats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    redis_budget_stats s = stats_;
    s.held = tokens_.size();
    s.connected = !fallback_ && ever_connected_;
    s.rate = fallback_ && fallback_bucket_ ? fallback_bucket_->rate_at(since_epoch()) : rate_now_;
    return s;
  }
  /// The local share's rate while Redis is unreachable.
  double fallback_rate() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return share_rate();
  }
  const redis_budget_options& options() const noexcept { return options_; }

 private:
  duration since_epoch() const { return std::chrono::duration_cast<duration>(clock_.now().time_since_epoch()); }
  std::size_t low_water() const noexcept { return std::max<std::size_t>(1, options_.lease / 2); }
  // How far ahead a lease may reach: the option, or room for a full lease for every process (with P processes all
  // asking, the fleet's tokens are reserved about P leases ahead; a horizon of one lease would split them thin).
  duration reach() const noexcept {
    if (options_.horizon != duration::zero()) return options_.horizon;
    const std::uint32_t processes = std::max(options_.expected_processes, stats_.members_seen);
    return detail::sat_mul(detail::sat_mul(interval_, options_.lease), processes);
  }
  double share_rate() const noexcept {
    const std::uint32_t processes = std::max(options_.expected_processes, stats_.members_seen);
    return gcra_.limits().rate / static_cast<double>(processes);
  }
  void ask() {
    asked_ = true;
    signal_.notify_one();
  }
  void drop_expired(duration now) {
    while (!tokens_.empty() && detail::sat_add(tokens_.front(), options_.hold) < now) {
      tokens_.pop_front();
      ++stats_.wasted;
      // A token was there for the taking and no check took it: nothing waits here any more (a refused check that
      // was cancelled since never comes back to say so).
      idle_ = true;
      waiting_ = false;
    }
  }
  void wake_runner() {
    if (wake_) wake_();
  }
  // Whether this process's checks want tokens: one was refused and not granted since, or the last grant was recent
  // and no token has gone unclaimed since (a runner asleep until its next token's time is not asking, but wants).
  bool demand(duration now) const {
    if (waiting_) return true;
    return !idle_ && last_grant_ && now - *last_grant_ <= std::max(options_.hold, reach());
  }

  // Within the lock: Redis is unreachable. The local share starts with no token in hand (its first comes one
  // interval from now), so the switch adds no burst.
  void enter_fallback(duration now, const std::string& why) {
    stats_.last_error = why;
    if (fallback_) return;
    fallback_ = true;
    ++stats_.fallbacks;
    budget_options share = gcra_.limits();
    share.rate = share_rate();
    share.burst = 1;
    share.min_rate = std::min(share.min_rate, share.rate);
    fallback_bucket_.emplace(share);
    (void)fallback_bucket_->try_acquire(now);
    wake_runner();
  }

  // The background thread: leases, throttles, hand-backs, heartbeats, reconnects. It holds the lock except while it
  // talks to Redis.
  void loop() {
    redis_connection connection(options_.redis);
    exponential<> backoff(exponential_options{options_.reconnect_base, 2.0, options_.reconnect_cap, duration::zero(),
                                              jitter::full});
    backoff.reseed(std::random_device{}());
    duration next_try = duration::min();       // not before this (a failure's backoff, or "come back later")
    duration next_heartbeat = duration::min();  // so that Redis counts this process among the members
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      const duration now = since_epoch();
      drop_expired(now);
      const bool wanting = demand(now) && !stopping_;
      const bool need = wanting && tokens_.size() < low_water() && now >= next_try;
      const bool heartbeat = now >= next_heartbeat && now >= next_try && !stopping_;
      const bool throttle = throttle_pending_ && now >= next_try && !stopping_;
      std::optional<std::uint32_t> hand_back;
      if ((stopping_ || (idle_ && !waiting_)) && last_lease_ && !fallback_) hand_back = future_tokens(now);
      if (stopping_ && (!hand_back || *hand_back == 0 || !connection.connected())) return;
      if (!need && !heartbeat && !throttle && !(hand_back && *hand_back != 0)) {
        duration until = next_heartbeat;
        if (wanting) until = std::min(until, std::max(next_try, now + options_.hold));
        if (throttle_pending_) until = std::min(until, next_try);
        asked_ = false;
        const auto wait = std::min(std::max(detail::sat_sub(until, now), duration{std::chrono::milliseconds(1)}),
                                   duration{std::chrono::seconds(1)});
        signal_.wait_for(lock, wait, [this] { return asked_ || stopping_; });
        continue;
      }
      const std::uint32_t want =
          need ? static_cast<std::uint32_t>(std::min<std::size_t>(options_.lease, options_.lease - tokens_.size()))
               : 0;
      std::optional<gcra_lease> held = last_lease_;
      const duration horizon = reach();
      throttle_pending_ = throttle ? false : throttle_pending_;
      lock.unlock();
      std::string failure;
      std::optional<gcra_lease> lease;
      bool returned = false;
      double cut = 0;
      try {
        if (throttle) cut = gcra_.throttle(connection);
        if (hand_back && *hand_back != 0 && held) {
          returned = gcra_.release(connection, held->tat,
                                   held->base + static_cast<std::int64_t>(held->granted - *hand_back) * held->interval);
        }
        if (need || heartbeat) lease = gcra_.reserve(connection, want, horizon, options_.member, options_.member_ttl);
      } catch (const std::exception& e) {
        failure = e.what();
        connection.close();
      }
      const duration arrived = since_epoch();
      lock.lock();
      stats_.round_trips += (throttle ? 1 : 0) + (hand_back && *hand_back != 0 ? 1 : 0) + (lease ? 1 : 0);
      stats_.reconnects = connection.connects();
      if (!failure.empty()) {
        if (throttle) throttle_pending_ = true;  // say it again once Redis answers
        enter_fallback(arrived, failure);
        next_try = arrived + backoff.next();
        continue;
      }
      backoff.reset();
      ever_connected_ = true;
      if (throttle) rate_now_ = cut;
      if (returned && held && last_lease_ && last_lease_->tat == held->tat) {
        const std::uint32_t n = std::min<std::uint32_t>(*hand_back, static_cast<std::uint32_t>(tokens_.size()));
        tokens_.erase(tokens_.end() - static_cast<std::ptrdiff_t>(n), tokens_.end());
        stats_.handed_back += n;
        last_lease_.reset();
      } else if (hand_back && held && !returned) {
        last_lease_.reset();  // someone reserved after it: these tokens stay ours until they expire
      }
      if (lease) {
        next_heartbeat = arrived + options_.member_ttl / 3;
        rate_now_ = lease->rate;
        stats_.members_seen = lease->members;
        if (fallback_) {
          fallback_ = false;  // back on the shared budget
          fallback_bucket_.reset();
        }
        // Redis' times become this clock's at the reply's arrival: a token is never spent early, only late.
        const duration offset = arrived - detail::from_micros(lease->now);
        for (std::uint32_t i = 0; i < lease->granted; ++i) {
          tokens_.push_back(offset + detail::from_micros(lease->token_at(i)));
        }
        stats_.leased += lease->granted;
        if (lease->granted != 0) {
          last_lease_ = lease;
          // The runner's refused checks will ask again when woken; a runner that no longer asks has no demand.
          waiting_ = false;
          wake_runner();
        } else if (want != 0) {
          next_try = offset + detail::from_micros(lease->retry_at);  // every token within reach is taken
        }
      }
    }
  }

  // Within the lock: how many of the last lease's tokens are still held and not yet due (only those can go back).
  std::uint32_t future_tokens(duration now) const {
    std::uint32_t n = 0;
    for (auto it = tokens_.rbegin(); it != tokens_.rend() && n < last_lease_->granted && *it > now; ++it) ++n;
    return n;
  }

  Clock& clock_;
  redis_budget_options options_;
  redis_gcra gcra_;
  duration interval_{};  // one token's interval at the full rate
  mutable std::mutex mutex_;
  std::condition_variable signal_;
  std::deque<duration> tokens_;  // when each held token may be spent, in the runner clock's time, in order
  std::optional<gcra_lease> last_lease_;  // the newest lease, while some of its tokens may go back
  std::optional<token_bucket> fallback_bucket_;
  std::optional<duration> last_grant_;
  std::function<void()> wake_;
  redis_budget_stats stats_;
  double rate_now_ = 0;
  std::atomic<std::uint64_t> granted_{0};
  std::atomic<std::uint64_t> throttles_{0};
  bool waiting_ = false;  // a check was refused and has not been granted since
  bool idle_ = false;     // a token expired unclaimed since the last request of a check
  bool asked_ = false;
  bool fallback_ = false;
  bool ever_connected_ = false;
  bool throttle_pending_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

POLLSTER_NAMESPACE_END
