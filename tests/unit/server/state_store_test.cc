// A state database written before the `shard` and `memory_bytes` task
// columns existed opens, gains them (0 for every stored task) and keeps its
// tasks.
#include "server/state_store.h"

#include <sqlite3.h>

#include <filesystem>

#include "gtest/gtest.h"
#include "tests/support/fixtures.h"

namespace caldera::server {
namespace {

TEST(StateStoreTest, DatabaseWithoutTheShardColumnsLoadsAndMigrates) {
  testing::TempDir tmp;
  const std::string dir = tmp.Join("state");
  std::filesystem::create_directories(dir);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir + "/coordinator.db").c_str(), &db), SQLITE_OK);
  // The schema before sharded calibration, with one job and one task.
  const char* old_schema = R"sql(
CREATE TABLE jobs(
  id TEXT PRIMARY KEY, seq INTEGER NOT NULL, request_id TEXT NOT NULL, spec BLOB NOT NULL,
  state INTEGER NOT NULL, error TEXT NOT NULL, create_time REAL NOT NULL,
  update_time REAL NOT NULL, start_time REAL NOT NULL, end_time REAL NOT NULL);
CREATE TABLE tasks(
  id TEXT PRIMARY KEY, job_id TEXT NOT NULL, ord INTEGER NOT NULL, kind INTEGER NOT NULL,
  layer INTEGER NOT NULL, module TEXT NOT NULL, state INTEGER NOT NULL,
  attempts INTEGER NOT NULL, lease_attempt TEXT NOT NULL, lease_worker TEXT NOT NULL,
  lease_expiry REAL NOT NULL, committed_attempt TEXT NOT NULL, result_uris TEXT NOT NULL,
  last_error TEXT NOT NULL, weighted_error REAL NOT NULL, seconds REAL NOT NULL);
INSERT INTO jobs VALUES ('j-1', 1, '', x'', 1, '', 0, 0, 0, 0);
INSERT INTO tasks VALUES ('j-1/calibrate-0000', 'j-1', 0, 1, 0, '', 3, 1, '', '', 0,
  'j-1/calibrate-0000/a1-aa', 'h.safetensors
x.safetensors', '', -1, 2.5);
)sql";
  ASSERT_EQ(sqlite3_exec(db, old_schema, nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);

  {
    absl::StatusOr<std::unique_ptr<StateStore>> store = StateStore::Open(dir);
    ASSERT_TRUE(store.ok()) << store.status();
    std::vector<TaskRecord> tasks;
    ASSERT_TRUE((*store)->LoadTasks(&tasks).ok());
    ASSERT_EQ(tasks.size(), 1u);
    EXPECT_EQ(tasks[0].id, "j-1/calibrate-0000");
    EXPECT_EQ(tasks[0].shard, 0);
    EXPECT_EQ(tasks[0].memory_bytes, 0);
    EXPECT_EQ(tasks[0].result_uris, (std::vector<std::string>{"h.safetensors", "x.safetensors"}));
    TaskRecord t = tasks[0];
    t.id = "j-1/calibrate-0000-s001";
    t.shard = 1;
    t.memory_bytes = 12345;
    ASSERT_TRUE((*store)->PutTask(t).ok());
  }
  // Reopened: already migrated, both tasks there.
  absl::StatusOr<std::unique_ptr<StateStore>> store = StateStore::Open(dir);
  ASSERT_TRUE(store.ok());
  std::vector<TaskRecord> tasks;
  ASSERT_TRUE((*store)->LoadTasks(&tasks).ok());
  ASSERT_EQ(tasks.size(), 2u);
  const TaskRecord& added = tasks[0].shard == 1 ? tasks[0] : tasks[1];
  EXPECT_EQ(added.shard, 1);
  EXPECT_EQ(added.memory_bytes, 12345);
}

}  // namespace
}  // namespace caldera::server
