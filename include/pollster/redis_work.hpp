// SPDX-License-Identifier: MIT
#pragma once

// A watch set split across worker processes through Redis (optional: link pollster::redis).
//
// A work set is a list of keys in Redis (an operation to await, a collection to watch), each with a spec (its URL,
// say): `redis_work_set::add(key, spec)`. Each worker process runs a `redis_worker` next to its runner; every key is
// polled by exactly one live worker, which holds the key's LEASE:
//  * a lease is `SET <set>:lease:<key> "<worker> <fence>" NX PX <lease>`, taken in a script that also hands out a
//    fencing token (a counter that only grows); the owner renews it every `renew_every` (a third of the lease), and
//    every write a worker makes for a key (its progress, its end, its events) is a script that first checks that the
//    lease still holds the writer's own value, so a deposed owner's writes are refused;
//  * workers announce themselves in a sorted set (an entry that expires with the lease); each takes up to its share,
//    ceil(keys / live workers), of the keys nobody holds, and a worker holding more than its share lets the extra go:
//    so a worker that dies leaves its keys free when its leases expire, and the others take them within `lease` plus
//    one renewal period; one that joins gets its share as the others let keys go;
//  * the owner saves its poll's progress (progress.hpp: attempts, elapsed time, schedule position, last value and
//    error, the check's own state such as an ETag) with every renewal, and whoever takes a key over resumes from it
//    (Azure's resume token) instead of starting the schedule again at its first delay. What a worker did after its
//    last renewal is lost: a check made between a save and a death is made again by the next owner.
//
// No two workers poll one key at once, with two precise exceptions. A worker starts no check after its LOCAL lease
// deadline, (the time it sent its last successful renewal) + lease - drift (Redlock's validity: `drift` covers the
// two clocks' rates and the script's run time), and aborts the check it has in flight at that deadline; Redis expires
// the lease no sooner than `lease` after it ran that renewal, which is later. So, after a partition, the old and the
// new owner overlap only (1) when a request the old owner sent before its deadline reaches the API more than `drift`
// later, or (2) when the old owner's process is paused (a stop-the-world pause, SIGSTOP, swapping) across its
// deadline: a check in flight then may still reach the API when it resumes. That is at most one check per key,
// which the fence makes harmless for pollster's own writes (Kleppmann's argument for fencing tokens); it never lasts a
// lease period.
//
// Threads: the worker has a thread and a Redis connection of its own for leases and progress; the pollers run on the
// runner, which must be driven on a thread of its own (runner::start(): a worker owning no key leaves the runner
// empty, and runner::run() would return). A check that finds its lease expired makes no request: it waits for the
// worker to cancel it. A key's poll that ends (done, failed, exhausted...) is recorded in one fenced script: the key
// leaves the set, and an event (type "finished", key, cause, value, error, attempts, elapsed_ms, worker, fence) is
// appended to the set's stream `<set>:events` for consumers in other processes (redis_stream.hpp). `on_done` runs
// on the worker's thread once Redis has recorded the end, so once per key.

#include "check.hpp"
#include "clock.hpp"
#include "detail/config.hpp"
#include "detail/saturate.hpp"
#include "detail/text.hpp"
#include "poller.hpp"
#include "progress.hpp"
#include "redis_budget.hpp"  // detail::default_member, to_micros
#include "redis_client.hpp"
#include "runner.hpp"
#include "schedule.hpp"

#include <algorithm>           // min, max
#include <chrono>              // milliseconds
#include <condition_variable>  // condition_variable
#include <cstdint>             // int64_t, uint64_t
#include <cstdlib>             // strtod, strtoll
#include <deque>               // deque
#include <map>                 // map
#include <memory>              // shared_ptr, make_shared
#include <mutex>               // mutex, lock_guard, unique_lock
#include <optional>            // optional
#include <random>              // random_device
#include <string>              // string, to_string
#include <string_view>         // string_view
#include <thread>              // thread
#include <type_traits>         // is_same_v, is_arithmetic_v, invoke_result_t
#include <utility>             // move
#include <variant>             // monostate
#include <vector>              // vector

POLLSTER_NAMESPACE_BEGIN

/// Named parameters of a work set and its workers (C++20: `{.name = "servers", .lease = 5s}`).
struct redis_work_options {
  std::string name = "default";  ///< the set: its Redis keys are "pollster:work:{<name>}:..."
  duration lease = std::chrono::seconds(10);  ///< how long a key stays with a worker that stopped renewing
  duration renew_every = duration::zero();    ///< how often the owner renews and saves (0: a third of the lease)
  duration drift = duration::zero();          ///< taken off the local deadline (0: lease / 100 + 2 ms, Redlock's)
  std::size_t claim_batch = 100;              ///< keys taken per round trip, at most
  std::size_t max_scan = 1000;                ///< keys looked at per round trip when looking for free ones
  std::size_t events_max_length = 100000;     ///< the events stream keeps about this many
  std::string worker;                         ///< this worker's name (empty: host, pid and a random number)
  redis_options redis{};
};

/// The Redis keys of one work set.
struct redis_work_keys {
  explicit redis_work_keys(const std::string& name) : prefix("pollster:work:{" + name + "}:") {}
  std::string prefix;
  std::string keys() const { return prefix + "keys"; }          ///< hash: key -> spec
  std::string progress() const { return prefix + "progress"; }  ///< hash: key -> progress text
  std::string saved() const { return prefix + "saved"; }        ///< hash: key -> when it was saved (ms, Redis' clock)
  std::string workers() const { return prefix + "workers"; }    ///< sorted set: worker -> expiry (ms)
  std::string fence() const { return prefix + "fence"; }        ///< the fencing-token counter
  std::string events() const { return prefix + "events"; }      ///< stream: finished keys
  std::string lease_prefix() const { return prefix + "lease:"; }
  std::string lease(const std::string& key) const { return lease_prefix() + key; }
  std::vector<std::string> all() const { return {keys(), progress(), saved(), workers(), fence(), events()}; }
};

/// What a worker knows of a key it holds: what `make_check` is given.
struct redis_work_item {
  std::string key;
  std::string spec;
  std::uint64_t fence = 0;   ///< this holder's fencing token (greater than every earlier holder's)
  std::string lease_key;     ///< the lease's Redis key and the value it holds while this worker owns the key:
  std::string lease_value;   ///< what redis_stream_writer::append_if_leased checks
};

namespace detail {
// One script for every operation on a set (the layout lives in one place). Times in milliseconds.
//   KEYS: keys, progress, saved, workers, fence, events
//   ARGV[1] op, ARGV[2] now ('' : TIME), ARGV[3] lease prefix, ARGV[4] worker, ARGV[5] lease ms
//   claim:   ARGV[6] worker ttl, ARGV[7] owned, ARGV[8] batch, ARGV[9] cursor, ARGV[10] max scan
//            -> {live workers, keys, share, next cursor, count, then per key: key, spec, fence, progress, age ms}
//   renew:   ARGV[6] worker ttl, then per key: key, fence, has progress (1/0), progress, its age ms -> {1/0 ...}
//   release: per key (from ARGV[6]): key, fence, has progress, progress, age -> {1/0 ...} (saved, lease dropped)
//   finish:  ARGV[6] key, ARGV[7] fence, ARGV[8] events max length, then field, value... -> event id, or false
//   leave:   the worker leaves the set of workers
inline const char* work_script() {
  return R"lua(
local op = ARGV[1]
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[2])
end
local prefix = ARGV[3]
local worker = ARGV[4]
local lease_ms = tonumber(ARGV[5])
local function holds(key, fence)
  return redis.call('GET', prefix .. key) == worker .. ' ' .. fence
end
local function save(key, has, text, age)
  if has == '1' then
    redis.call('HSET', KEYS[2], key, text)
    redis.call('HSET', KEYS[3], key, string.format('%.0f', now - tonumber(age)))
  end
end
local function heartbeat(ttl)
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', string.format('%.0f', now))
  redis.call('ZADD', KEYS[4], string.format('%.0f', now + ttl), worker)
end

if op == 'claim' then
  heartbeat(tonumber(ARGV[6]))
  local live = redis.call('ZCARD', KEYS[4])
  local total = redis.call('HLEN', KEYS[1])
  local share = math.ceil(total / math.max(live, 1))
  local want = math.min(tonumber(ARGV[8]), share - tonumber(ARGV[7]))
  local cursor = ARGV[9]
  local out = {live, total, share, cursor, 0}
  if want <= 0 or total == 0 then return out end
  local max_scan = tonumber(ARGV[10])
  local scanned = 0
  local claimed = 0
  repeat
    local r = redis.call('HSCAN', KEYS[1], cursor, 'COUNT', 100)
    cursor = r[1]
    local flat = r[2]
    for i = 1, #flat, 2 do
      scanned = scanned + 1
      local key = flat[i]
      if claimed < want and redis.call('EXISTS', prefix .. key) == 0 then
        local fence = redis.call('INCR', KEYS[5])
        redis.call('SET', prefix .. key, worker .. ' ' .. fence, 'PX', lease_ms)
        claimed = claimed + 1
        local text = redis.call('HGET', KEYS[2], key)
        local saved = tonumber(redis.call('HGET', KEYS[3], key))
        local age = -1
        if text and saved then age = math.max(0, now - saved) else text = '' end
        table.insert(out, key)
        table.insert(out, flat[i + 1])
        table.insert(out, fence)
        table.insert(out, text)
        table.insert(out, age)
      end
    end
  until cursor == '0' or claimed >= want or scanned >= max_scan
  out[4] = cursor
  out[5] = claimed
  return out
elseif op == 'renew' or op == 'release' then
  local first = 6
  if op == 'renew' then
    heartbeat(tonumber(ARGV[6]))
    first = 7
  end
  local out = {}
  for i = first, #ARGV, 5 do
    local key = ARGV[i]
    if holds(key, ARGV[i + 1]) then
      save(key, ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
      if op == 'renew' then
        redis.call('PEXPIRE', prefix .. key, lease_ms)
      else
        redis.call('DEL', prefix .. key)
      end
      table.insert(out, 1)
    else
      table.insert(out, 0)
    end
  end
  return out
elseif op == 'finish' then
  local key = ARGV[6]
  if not holds(key, ARGV[7]) then return false end
  redis.call('HDEL', KEYS[1], key)
  redis.call('HDEL', KEYS[2], key)
  redis.call('HDEL', KEYS[3], key)
  redis.call('DEL', prefix .. key)
  local args = {'XADD', KEYS[6], 'MAXLEN', '~', ARGV[8], '*'}
  for i = 9, #ARGV do args[#args + 1] = ARGV[i] end
  return redis.call(unpack(args))
elseif op == 'leave' then
  redis.call('ZREM', KEYS[4], worker)
  return 1
end
return redis.error_reply('pollster work set: unknown op ' .. tostring(op))
)lua";
}

inline std::string millis_text(duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}
}  // namespace detail

/// The producer's (and an operator's) view of a work set: add and remove keys, look at who holds what.
class redis_work_set {
 public:
  explicit redis_work_set(redis_options redis, std::string name = "default")
      : connection_(std::move(redis)), keys_(name), name_(std::move(name)) {}

  /// Adds a key to poll, with its spec (overwrites the spec of a key already there; its holder keeps it).
  void add(const std::string& key, const std::string& spec = {}) {
    connection_.command({"HSET", keys_.keys(), key, spec}).check();
  }
  /// Adds many at once (one command).
  void add(const std::vector<std::pair<std::string, std::string>>& items) {
    if (items.empty()) return;
    std::vector<std::string> args{"HSET", keys_.keys()};
    for (const auto& [key, spec] : items) {
      args.push_back(key);
      args.push_back(spec);
    }
    connection_.command(args).check();
  }
  /// Removes a key: its holder's next renewal finds no lease and stops polling it.
  bool remove(const std::string& key) {
    const bool removed = connection_.command({"HDEL", keys_.keys(), key}).as_integer() == 1;
    connection_.command({"DEL", keys_.lease(key)}).check();
    connection_.command({"HDEL", keys_.progress(), key}).check();
    connection_.command({"HDEL", keys_.saved(), key}).check();
    return removed;
  }
  std::size_t size() { return static_cast<std::size_t>(connection_.command({"HLEN", keys_.keys()}).as_integer()); }
  /// Who holds `key` ("<worker> <fence>"), if anyone.
  std::optional<std::string> holder(const std::string& key) {
    const redis_value v = connection_.command({"GET", keys_.lease(key)});
    if (v.is_nil()) return std::nullopt;
    return v.as_string();
  }
  /// The progress text the holder last saved (progress_from_text reads it).
  std::optional<std::string> progress(const std::string& key) {
    const redis_value v = connection_.command({"HGET", keys_.progress(), key});
    if (v.is_nil()) return std::nullopt;
    return v.as_string();
  }
  /// Live workers.
  std::size_t workers() {
    const redis_value live = connection_.command({"ZCOUNT", keys_.workers(), "(" + now_ms(), "+inf"});
    return static_cast<std::size_t>(live.as_integer());
  }
  /// Deletes the whole set: keys, leases, progress, workers, fence and events.
  void clear() {
    std::vector<std::string> args{"DEL"};
    for (const std::string& k : keys_.all()) args.push_back(k);
    connection_.command(args).check();
    std::string cursor = "0";
    do {
      const redis_value r = connection_.command({"SCAN", cursor, "MATCH", keys_.lease_prefix() + "*", "COUNT", "1000"});
      const std::vector<redis_value>& parts = r.as_array();
      cursor = parts.at(0).as_string();
      for (const redis_value& k : parts.at(1).as_array()) connection_.command({"DEL", k.as_string()}).check();
    } while (cursor != "0");
  }
  const redis_work_keys& keys() const noexcept { return keys_; }
  const std::string& name() const noexcept { return name_; }
  redis_connection& connection() noexcept { return connection_; }

 private:
  std::string now_ms() {
    const std::vector<redis_value>& t = connection_.command({"TIME"}).as_array();
    return std::to_string(t.at(0).as_integer() * 1000 + t.at(1).as_integer() / 1000);
  }
  redis_connection connection_;
  redis_work_keys keys_;
  std::string name_;
};

/// How a worker writes a poll's value and error into its saved progress and its "finished" event: text for
/// std::string, numbers and std::monostate. Give `redis_worker` your own (the same four members) for other types.
struct text_codec {
  template <class X>
  std::string encode(const X& x) const {
    if constexpr (std::is_same_v<X, std::string>) {
      return x;
    } else if constexpr (std::is_same_v<X, std::monostate>) {
      (void)x;
      return {};
    } else if constexpr (std::is_same_v<X, bool>) {
      return x ? "true" : "false";
    } else if constexpr (std::is_integral_v<X>) {
      return std::to_string(x);
    } else if constexpr (std::is_floating_point_v<X>) {
      return detail::number_text(static_cast<double>(x));
    } else {
      static_assert(std::is_same_v<X, std::string>,
                    "pollster::text_codec: give redis_worker a codec for this value or error type (encode_value, "
                    "decode_value, encode_error, decode_error)");
      return {};
    }
  }
  template <class X>
  X decode(std::string_view text) const {
    if constexpr (std::is_same_v<X, std::string>) {
      return std::string(text);
    } else if constexpr (std::is_same_v<X, std::monostate>) {
      return {};
    } else if constexpr (std::is_same_v<X, bool>) {
      return text == "true";
    } else if constexpr (std::is_integral_v<X>) {
      return static_cast<X>(std::strtoll(std::string(text).c_str(), nullptr, 10));
    } else {
      return static_cast<X>(std::strtod(std::string(text).c_str(), nullptr));
    }
  }
  template <class T>
  std::string encode_value(const T& v) const { return encode(v); }
  template <class E>
  std::string encode_error(const E& e) const { return encode(e); }
};

/// What a worker did (redis_worker::stats; any thread).
struct redis_worker_stats {
  std::uint64_t claimed = 0;    ///< keys taken (free keys, including those another worker left)
  std::uint64_t resumed = 0;    ///< of which, continued from a saved progress
  std::uint64_t finished = 0;   ///< keys whose poll ended here (recorded in Redis)
  std::uint64_t released = 0;   ///< keys let go to balance the set (progress saved)
  std::uint64_t lost = 0;       ///< keys lost: a renewal found another holder, or the local deadline passed
  std::uint64_t renewals = 0;   ///< renewal round trips
  std::uint64_t failures = 0;   ///< round trips that failed (Redis unreachable)
  std::uint64_t bad_progress = 0;  ///< saved progress that could not be read (the poll started again)
  std::size_t owned = 0;        ///< keys held now
  std::size_t share = 0;        ///< ceil(keys / live workers), as Redis last said
  std::size_t live_workers = 0;
};

template <class Clock, class MakeCheck, class Schedule, class Stop, class Codec = text_codec>
class redis_worker;

namespace detail {

/// A key's shared state: the worker thread writes the lease, the runner thread (hooks, check) the progress.
template <class T, class E>
struct work_cell {
  enum class state { polling, releasing, lost, done };
  std::mutex mutex;
  redis_work_item item;
  duration valid_until{};      // (runner clock) no check starts after this; the worker cancels the poll here
  std::string progress;        // the latest progress text
  bool dirty = false;          // not yet saved to Redis
  duration progress_at{};      // (runner clock) when it was taken
  state st = state::polling;
  handle poll;
  std::optional<completion<T, E>> parked;  // a check that came after the deadline: no request, no report
};

/// The check a worker submits: the user's, run only while the lease holds locally.
template <class Inner, class T, class E, class Clock>
struct leased_check {
  Inner inner;
  std::shared_ptr<work_cell<T, E>> cell;
  Clock* clock;

  void operator()(const poll_state& s, completion<T, E> c) {
    {
      std::lock_guard<std::mutex> lock(cell->mutex);
      const duration now = std::chrono::duration_cast<duration>(clock->now().time_since_epoch());
      if (cell->st != work_cell<T, E>::state::polling || now >= cell->valid_until) {
        cell->parked.emplace(std::move(c));  // the lease may be another's by now: make no request
        return;
      }
    }
    if constexpr (check_traits<Inner>::is_async) {
      if constexpr (check_traits<Inner>::takes_state) {
        inner(s, std::move(c));
      } else {
        inner(std::move(c));
      }
    } else {
      using step_type = step<T, E>;
      if constexpr (check_traits<Inner>::takes_state) {
        c(to_step<step_type>(inner(s)));
      } else {
        (void)s;
        c(to_step<step_type>(inner()));
      }
    }
  }
  template <class I = Inner, class = std::enable_if_t<saves_state<I>::value>>
  std::string save_state() const {
    return inner.save_state();
  }
  template <class I = Inner, class = std::enable_if_t<saves_state<I>::value>>
  void restore_state(const std::string& s) {
    inner.restore_state(s);
  }
};

/// The hooks of a worker's pollers: the progress, as text, after every attempt.
template <class T, class E, class Codec, class Clock>
struct progress_hooks {
  std::shared_ptr<work_cell<T, E>> cell;
  const Codec* codec;
  Clock* clock;
  template <class Poller>
  void on_progress(const Poller& p) {
    std::string text = progress_to_text(
        p.progress(), [this](const T& v) { return codec->encode_value(v); },
        [this](const E& e) { return codec->encode_error(e); });
    const duration now = std::chrono::duration_cast<duration>(clock->now().time_since_epoch());
    std::lock_guard<std::mutex> lock(cell->mutex);
    cell->progress = std::move(text);
    cell->dirty = true;
    cell->progress_at = now;
  }
};

}  // namespace detail

/// A worker of a work set (see the top of this header): takes its share of the set's keys, polls each on `runner`
/// with `make_check(item)`, `schedule` and `stop` (prototypes: each key gets fresh copies), under `submit` options
/// (its budget, say), and records each key's end. `codec` turns the value and error types into text.
template <class Clock, class MakeCheck, class Schedule, class Stop, class Codec>
class redis_worker {
 public:
  using check_type = std::decay_t<std::invoke_result_t<MakeCheck&, const redis_work_item&>>;
  POLLSTER_CHECK_ARGUMENTS("pollster::redis_worker", check_type, Schedule, Stop);
  using step_type = check_step_t<check_type>;
  using value_type = typename step_type::value_type;
  using error_type = typename step_type::error_type;
  using outcome_type = outcome<value_type, error_type>;
  using time_point = typename Clock::time_point;
  using on_done_type = std::function<void(const redis_work_item&, const outcome_type&)>;

  redis_worker(runner<Clock>& r, redis_work_options options, MakeCheck make_check, Schedule schedule, Stop stop,
               Codec codec = Codec{}, submit_options submit = {}, on_done_type on_done = {})
      : runner_(r), options_(std::move(options)), keys_(options_.name), make_check_(std::move(make_check)),
        schedule_(std::move(schedule)), stop_(std::move(stop)), codec_(std::move(codec)), submit_(submit),
        on_done_(std::move(on_done)), script_(detail::work_script()) {
    if (options_.lease <= std::chrono::milliseconds(10)) {
      detail::throw_invalid("redis_worker", "lease", "> 10ms", detail::duration_text(options_.lease));
    }
    if (options_.renew_every == duration::zero()) options_.renew_every = options_.lease / 3;
    if (options_.drift == duration::zero()) options_.drift = options_.lease / 100 + std::chrono::milliseconds(2);
    if (options_.renew_every <= duration::zero() || options_.renew_every + options_.drift >= options_.lease) {
      detail::throw_invalid("redis_worker", "renew_every", "> 0 and < lease - drift",
                            detail::duration_text(options_.renew_every));
    }
    if (options_.claim_batch == 0) detail::throw_invalid("redis_worker", "claim_batch", ">= 1", "0");
    if (submit_.poll.deadline) {
      detail::throw_invalid("redis_worker", "submit.poll.deadline",
                            "empty (a deadline on one process's clock means nothing on another's: use a stop rule "
                            "such as after_elapsed, which a resumed poll keeps)",
                            "a time point");
    }
    if (options_.worker.empty()) options_.worker = detail::default_member();
    thread_ = std::thread([this] { loop(); });
  }
  redis_worker(const redis_worker&) = delete;
  redis_worker& operator=(const redis_worker&) = delete;
  /// Lets every key go (progress saved, leases dropped) and leaves the set; waits at most `lease` for the runner to
  /// end the polls. Stop the worker before its runner.
  ~redis_worker() { stop(); }

  /// As the destructor; idempotent.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(inbox_->mutex);
      stopping_ = true;
    }
    inbox_->signal.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  redis_worker_stats stats() const {
    std::lock_guard<std::mutex> lock(inbox_->mutex);
    redis_worker_stats s = stats_;
    s.owned = cells_.size();
    return s;
  }
  /// The keys this worker holds now.
  std::vector<std::string> owned() const {
    std::lock_guard<std::mutex> lock(inbox_->mutex);
    std::vector<std::string> keys;
    for (const auto& entry : cells_) keys.push_back(entry.first);
    return keys;
  }
  const std::string& worker() const noexcept { return options_.worker; }
  /// Why the last round trip failed (empty if none has).
  std::string last_error() const {
    std::lock_guard<std::mutex> lock(inbox_->mutex);
    return last_error_;
  }
  const redis_work_options& options() const noexcept { return options_; }

 private:
  using cell_type = detail::work_cell<value_type, error_type>;
  using cell_ptr = std::shared_ptr<cell_type>;
  using leased = detail::leased_check<check_type, value_type, error_type, Clock>;
  using hooks = detail::progress_hooks<value_type, error_type, Codec, Clock>;
  using poller_type = poller<leased, resumable<Schedule>, Stop, time_point, hooks>;

  /// What a poll's end leaves for the worker thread (the runner's thread only queues it).
  struct ended {
    cell_ptr cell;
    outcome_type outcome;
  };
  /// The worker's lock and wake-up, shared with the runner's completion callbacks (which may outlive the worker).
  struct inbox {
    std::mutex mutex;
    std::condition_variable signal;
    std::deque<ended> ends;
  };

  duration now() const { return std::chrono::duration_cast<duration>(clock().now().time_since_epoch()); }
  Clock& clock() const { return runner_.clock(); }

  std::vector<std::string> script_keys() const { return keys_.all(); }
  std::vector<std::string> script_args(const char* op) const {
    return {op, std::string(), keys_.lease_prefix(), options_.worker, detail::millis_text(options_.lease)};
  }

  void loop() {
    redis_connection connection(options_.redis);
    exponential<> backoff(exponential_options{std::chrono::milliseconds(50), 2.0, options_.renew_every,
                                              duration::zero(), jitter::full});
    backoff.reseed(std::random_device{}());
    std::string cursor = "0";
    duration next_round = duration::min();
    while (true) {
      {
        std::lock_guard<std::mutex> lock(inbox_->mutex);
        if (stopping_) break;
      }
      bool failed = false;
      try {
        settle_ends(connection);
        if (now() >= next_round) {
          renew(connection);
          claim(connection, cursor);
          next_round = now() + options_.renew_every;
          backoff.reset();
        }
      } catch (const std::exception& e) {  // Redis unreachable (or a check that could not be built)
        failed = true;
        connection.close();
        std::lock_guard<std::mutex> lock(inbox_->mutex);
        ++stats_.failures;
        last_error_ = e.what();
      }
      if (failed) next_round = now() + backoff.next();
      expire_local();
      // Sleep until the next round, the earliest local deadline, or an end the runner queued.
      std::unique_lock<std::mutex> lock(inbox_->mutex);
      duration until = next_round;
      for (const auto& entry : cells_) until = std::min(until, entry.second->valid_until);
      const duration wait = std::max(detail::sat_sub(until, now()), duration{std::chrono::milliseconds(1)});
      inbox_->signal.wait_for(lock, wait, [this] { return stopping_ || !inbox_->ends.empty(); });
    }
    try {
      let_all_go(connection);
    } catch (const std::exception&) {
      // Redis unreachable: the leases expire by themselves, with the progress of the last renewal.
    }
    try {
      script_.run(connection, script_keys(), script_args("leave"));
    } catch (const std::exception&) {
    }
  }

  // Renews every lease held and saves the progress that changed; a lease found gone (or another's) is lost.
  void renew(redis_connection& connection) {
    std::vector<cell_ptr> cells;
    std::vector<std::string> args = script_args("renew");
    args.push_back(detail::millis_text(options_.lease));
    std::vector<std::pair<duration, bool>> sent;  // when each progress was taken, and whether it was sent
    {
      std::lock_guard<std::mutex> lock(inbox_->mutex);
      for (const auto& entry : cells_) cells.push_back(entry.second);
    }
    if (cells.empty()) return;
    const duration send_time = now();
    for (const cell_ptr& c : cells) {
      std::lock_guard<std::mutex> lock(c->mutex);
      args.push_back(c->item.key);
      args.push_back(std::to_string(c->item.fence));
      args.push_back(c->dirty ? "1" : "0");
      args.push_back(c->dirty ? c->progress : std::string());
      args.push_back(detail::millis_text(std::max(duration::zero(), send_time - c->progress_at)));
      sent.emplace_back(c->progress_at, c->dirty);
    }
    const redis_value reply = script_.run(connection, script_keys(), args);
    const std::vector<redis_value>& held = reply.as_array();
    std::lock_guard<std::mutex> lock(inbox_->mutex);
    ++stats_.renewals;
    for (std::size_t i = 0; i < cells.size() && i < held.size(); ++i) {
      cell_type& c = *cells[i];
      std::lock_guard<std::mutex> cell_lock(c.mutex);
      if (held[i].as_integer() == 1) {
        c.valid_until = send_time + options_.lease - options_.drift;
        if (sent[i].second && c.progress_at == sent[i].first) c.dirty = false;
      } else if (c.st == cell_type::state::polling) {
        lose(c);
      }
    }
  }

  // Within the worker's and the cell's locks: the key is no longer ours; stop its poll (no save: not ours to save).
  void lose(cell_type& c) {
    c.st = cell_type::state::lost;
    c.poll.cancel();
    ++stats_.lost;
    cells_.erase(c.item.key);
  }

  // Takes free keys up to this worker's share, and lets the extra go when it holds more.
  void claim(redis_connection& connection, std::string& cursor) {
    std::size_t owned = 0;
    {
      std::lock_guard<std::mutex> lock(inbox_->mutex);
      owned = cells_.size();
    }
    std::vector<std::string> args = script_args("claim");
    args.push_back(detail::millis_text(options_.lease));
    args.push_back(std::to_string(owned));
    args.push_back(std::to_string(options_.claim_batch));
    args.push_back(cursor);
    args.push_back(std::to_string(options_.max_scan));
    const duration send_time = now();
    const redis_value reply = script_.run(connection, script_keys(), args);
    const std::vector<redis_value>& r = reply.as_array();
    if (r.size() < 5) throw redis_error(redis_error::kind::reply, "pollster: unexpected work-set reply");
    const auto live = static_cast<std::size_t>(r[0].as_integer());
    const auto share = static_cast<std::size_t>(r[2].as_integer());
    cursor = r[3].as_string();
    const auto count = static_cast<std::size_t>(r[4].as_integer());
    for (std::size_t i = 0; i < count && 5 + i * 5 + 4 < r.size(); ++i) {
      const std::size_t at = 5 + i * 5;
      redis_work_item item;
      item.key = r[at].as_string();
      item.spec = r[at + 1].as_string();
      item.fence = static_cast<std::uint64_t>(r[at + 2].as_integer());
      item.lease_key = keys_.lease(item.key);
      item.lease_value = options_.worker + " " + std::to_string(item.fence);
      const std::string& text = r[at + 3].as_string();
      const long long age = r[at + 4].as_integer();
      const std::optional<duration> since_saved =
          age < 0 ? std::optional<duration>{} : std::optional<duration>{std::chrono::milliseconds(age)};
      try {
        start(std::move(item), text, since_saved, send_time);
      } catch (const std::exception& e) {
        // The check could not be built: the lease is left to expire, and the key to another worker (or this one).
        std::lock_guard<std::mutex> lock(inbox_->mutex);
        ++stats_.failures;
        last_error_ = e.what();
      }
    }
    std::lock_guard<std::mutex> lock(inbox_->mutex);
    stats_.share = share;
    stats_.live_workers = live;
    // More than a share: let the newest extra keys go (their polls end cancelled; the end saves their progress).
    std::size_t polling = 0;
    for (const auto& entry : cells_) {
      std::lock_guard<std::mutex> cell_lock(entry.second->mutex);
      if (entry.second->st == cell_type::state::polling) ++polling;
    }
    for (auto it = cells_.rbegin(); it != cells_.rend() && polling > share; ++it) {
      cell_type& c = *it->second;
      std::lock_guard<std::mutex> cell_lock(c.mutex);
      if (c.st != cell_type::state::polling) continue;
      c.st = cell_type::state::releasing;
      c.poll.cancel();
      --polling;
    }
  }

  // Builds a key's poll, resumed from its saved progress when there is one, and hands it to the runner.
  void start(redis_work_item item, const std::string& progress_text, std::optional<duration> since_saved,
             duration send_time) {
    auto cell = std::make_shared<cell_type>();
    cell->item = item;
    cell->valid_until = send_time + options_.lease - options_.drift;
    resumable<Schedule> schedule{schedule_};
    if constexpr (detail::can_reseed<Schedule>::value) schedule.reseed(std::random_device{}());
    poller_type p(leased{make_check_(cell->item), cell, &clock()}, std::move(schedule), stop_, clock().now(),
                  submit_.poll, hooks{cell, &codec_, &clock()});
    bool resumed = false;
    bool bad = false;
    if (!progress_text.empty() && since_saved) {
      try {
        p.resume(progress_from_text<value_type, error_type>(
                     progress_text, [this](std::string_view s) { return decode_value(s); },
                     [this](std::string_view s) { return decode_error(s); }),
                 clock().now(), *since_saved);
        resumed = true;
      } catch (const std::exception&) {
        bad = true;  // unreadable: the poll starts again (and the next save replaces it)
      }
    }
    {
      std::lock_guard<std::mutex> lock(inbox_->mutex);
      cells_[cell->item.key] = cell;
      ++stats_.claimed;
      if (resumed) ++stats_.resumed;
      if (bad) ++stats_.bad_progress;
    }
    std::shared_ptr<inbox> box = inbox_;
    submit_options submit = submit_;
    submit.poll = poll_options{};  // the poll's options went into the poller
    handle h = runner_.submit_poller(
        std::move(p),
        [box, cell](outcome_type o) {
          {
            std::lock_guard<std::mutex> lock(box->mutex);
            box->ends.push_back(ended{cell, std::move(o)});
          }
          box->signal.notify_one();
        },
        submit);
    std::lock_guard<std::mutex> lock(cell->mutex);
    cell->poll = h;
    if (cell->st != cell_type::state::polling) h.cancel();  // lost or let go before the handle was here
  }

  value_type decode_value(std::string_view s) const {
    if constexpr (std::is_same_v<Codec, text_codec>) {
      return codec_.template decode<value_type>(s);
    } else {
      return codec_.decode_value(s);
    }
  }
  error_type decode_error(std::string_view s) const {
    if constexpr (std::is_same_v<Codec, text_codec>) {
      return codec_.template decode<error_type>(s);
    } else {
      return codec_.decode_error(s);
    }
  }

  // The ends the runner queued: a poll that ended by itself is recorded (fenced) and reported; one let go saves its
  // progress and drops its lease; one lost is forgotten. On a Redis failure the unsettled ends go back in the queue.
  void settle_ends(redis_connection& connection) {
    std::deque<ended> ends;
    {
      std::lock_guard<std::mutex> lock(inbox_->mutex);
      ends.swap(inbox_->ends);
    }
    std::vector<std::string> release = script_args("release");
    std::vector<ended> released;
    try {
      while (!ends.empty()) {
        // Our own reference, declared before the lock: popping the end may drop the last other one (the runner
        // frees its poller's callback on its own thread), and the cell's mutex must outlive the lock.
        const cell_ptr keep = ends.front().cell;
        cell_type& c = *keep;
        std::unique_lock<std::mutex> cell_lock(c.mutex);
        const bool cancelled = ends.front().outcome.cause == cause::cancelled;
        if (c.st == cell_type::state::lost || (cancelled && c.st == cell_type::state::polling)) {
          ends.pop_front();  // lost: nothing of ours to write
          continue;
        }
        if (cancelled) {  // let go: save where it stood, drop the lease
          release.push_back(c.item.key);
          release.push_back(std::to_string(c.item.fence));
          release.push_back(c.dirty ? "1" : "0");
          release.push_back(c.dirty ? c.progress : std::string());
          release.push_back(detail::millis_text(std::max(duration::zero(), now() - c.progress_at)));
          released.push_back(std::move(ends.front()));
          ends.pop_front();
          continue;
        }
        c.st = cell_type::state::done;
        const redis_work_item item = c.item;
        cell_lock.unlock();
        finish(connection, item, ends.front().outcome);
        ends.pop_front();
      }
      if (!released.empty()) {
        (void)script_.run(connection, script_keys(), release);
        std::lock_guard<std::mutex> lock(inbox_->mutex);
        for (const ended& e : released) {
          cells_.erase(e.cell->item.key);
          ++stats_.released;
        }
        released.clear();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(inbox_->mutex);
      for (ended& e : released) inbox_->ends.push_back(std::move(e));
      for (ended& e : ends) inbox_->ends.push_back(std::move(e));
      throw;
    }
  }

  void finish(redis_connection& connection, const redis_work_item& item, const outcome_type& o) {
    std::vector<std::string> args = script_args("finish");
    args.push_back(item.key);
    args.push_back(std::to_string(item.fence));
    args.push_back(std::to_string(options_.events_max_length));
    const auto field = [&args](const char* name, std::string value) {
      args.push_back(name);
      args.push_back(std::move(value));
    };
    field("type", "finished");
    field("id", item.key + "/finished");
    field("key", item.key);
    field("cause", to_string(o.cause));
    if (o.last_value) field("value", codec_.encode_value(*o.last_value));
    if (o.last_error) field("error", codec_.encode_error(*o.last_error));
    field("attempts", std::to_string(o.attempts));
    field("elapsed_ms", detail::millis_text(o.elapsed));
    field("worker", options_.worker);
    field("fence", std::to_string(item.fence));
    const redis_value reply = script_.run(connection, script_keys(), args);
    const bool recorded = !reply.is_nil();
    {
      std::lock_guard<std::mutex> lock(inbox_->mutex);
      cells_.erase(item.key);
      if (recorded) ++stats_.finished;
    }
    if (recorded && on_done_) on_done_(item, o);
  }

  // A lease whose local deadline passed (renewals failed): stop polling it now; it is not ours any more.
  void expire_local() {
    std::lock_guard<std::mutex> lock(inbox_->mutex);
    const duration t = now();
    std::vector<cell_ptr> expired;
    for (const auto& entry : cells_) {
      if (t >= entry.second->valid_until) expired.push_back(entry.second);
    }
    for (const cell_ptr& c : expired) {
      std::lock_guard<std::mutex> cell_lock(c->mutex);
      lose(*c);
    }
  }

  // Stopping: cancel every poll, wait (at most a lease) for the runner to end them, save and release.
  void let_all_go(redis_connection& connection) {
    {
      std::lock_guard<std::mutex> lock(inbox_->mutex);
      for (const auto& entry : cells_) {
        std::lock_guard<std::mutex> cell_lock(entry.second->mutex);
        if (entry.second->st == cell_type::state::polling) {
          entry.second->st = cell_type::state::releasing;
          entry.second->poll.cancel();
        }
      }
    }
    const duration until = now() + options_.lease;
    while (now() < until) {
      settle_ends(connection);
      std::unique_lock<std::mutex> lock(inbox_->mutex);
      if (cells_.empty()) return;
      inbox_->signal.wait_for(lock, std::chrono::milliseconds(20), [this] { return !inbox_->ends.empty(); });
    }
  }

  runner<Clock>& runner_;
  redis_work_options options_;
  redis_work_keys keys_;
  MakeCheck make_check_;
  Schedule schedule_;
  Stop stop_;
  Codec codec_;
  submit_options submit_;
  on_done_type on_done_;
  redis_script script_;
  std::shared_ptr<inbox> inbox_ = std::make_shared<inbox>();  // its mutex guards what follows
  std::map<std::string, cell_ptr> cells_;  // the keys held (in key order; the last ones go first when rebalancing)
  redis_worker_stats stats_;
  std::string last_error_;
  bool stopping_ = false;
  std::thread thread_;
};

POLLSTER_NAMESPACE_END
