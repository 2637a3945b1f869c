#pragma once

// event_log.h: the asynchronous security event log. record() never blocks
// on the database: it stamps the time and queues the event; one writer thread
// drains the bounded queue in batches into the Store (one transaction per
// batch, which assigns the ids); followers are notified after each commit.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "monitor/event.h"
#include "store/store.h"

namespace warden::monitor {

struct EventLogOptions {
  size_t max_queue = 100000;                           // record() drops beyond this
  size_t max_batch = 1000;                             // events per transaction
  core::Seconds retention{30 * 24 * 3600};             // pruneEvents older than this
  core::Seconds prune_interval{3600};                  // how often the writer prunes
};

// eventRecordToJson returns the wire form {id, time (RFC 3339 UTC), type,
// principal, actor, action, resource, decision, rule, reason[, detail]} used
// by GET /v1/events and `warden events -o json`.
nlohmann::json eventRecordToJson(const store::EventRecord& record);

class EventLog {
 public:
  // EventSubscriber receives each committed batch, in id order, on the
  // writer thread: it must be quick and must not call flush().
  using EventSubscriber = std::function<void(const std::vector<store::EventRecord>&)>;

  // EventLog starts the writer thread. |store| and |clock| must outlive it.
  EventLog(store::Store& store, const core::Clock& clock, EventLogOptions options = {});
  // ~EventLog flushes everything recorded so far and stops the writer.
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // record stamps |event| with the current time and queues it (thread-safe,
  // never blocks on I/O). When the queue
  // is full the event is dropped and counted; the writer later records one
  // `events_dropped` event with the count.
  void record(Event event);
  // flush blocks until every event recorded before the call is committed
  // (or failed to commit, which is logged) and its followers were notified.
  void flush();
  // subscribe registers |subscriber| for batches committed from now on and
  // returns an id for unsubscribe.
  uint64_t subscribe(EventSubscriber subscriber);
  // unsubscribe removes a subscriber; once it returns the callback is not
  // running and will not be called again (safe to call from the callback).
  void unsubscribe(uint64_t id);
  // droppedTotal returns how many events were dropped since start.
  uint64_t droppedTotal() const;

 private:
  struct QueuedEvent {
    Event event;
    int64_t time = 0;  // unix seconds when record() was called
  };

  void writerLoop();
  void writeBatch(std::vector<QueuedEvent>& batch);
  void maybePrune();

  store::Store& store_;
  const core::Clock& clock_;
  const EventLogOptions options_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::deque<QueuedEvent> queue_;
  uint64_t enqueued_seq_ = 0;   // events accepted by record() (guarded by mu_)
  uint64_t committed_seq_ = 0;  // events handled by the writer (guarded by mu_)
  uint64_t dropped_pending_ = 0;
  uint64_t dropped_total_ = 0;
  bool stopping_ = false;

  std::recursive_mutex subscribers_mu_;  // held while callbacks run
  std::map<uint64_t, EventSubscriber> subscribers_;
  uint64_t next_subscriber_id_ = 1;

  std::chrono::steady_clock::time_point next_prune_{};
  std::thread writer_;
};

}  // namespace warden::monitor
