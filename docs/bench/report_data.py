# Fills merchant 1 of a migrated SQLite database with a 366-day history for the report
# memory benchmark (docs/benchmarks.md): 4 departments x 2 groups x 5 staff, 10 accounts,
# 5,000 fans, N chats. usage: report_data.py PATH_TO_DB N
import random, sqlite3, sys, time
db, n = sys.argv[1], int(sys.argv[2])
random.seed(7)
c = sqlite3.connect(db)
end = int(time.time()); start = end - 366 * 86400
c.executemany("INSERT INTO departments VALUES (1, ?, ?)", [(d, f"部门{d}") for d in range(1, 5)])
c.executemany("INSERT INTO depart_groups VALUES (1, ?, ?, ?)", [(d * 10 + g, d, f"组{d}{g}") for d in range(1, 5) for g in range(1, 3)])
staff = [f"S{i:03}" for i in range(40)]
c.executemany("INSERT INTO staff VALUES (1, ?, ?, ?, ?, 0)", [(s, f"员工{i}", i // 10 + 1, (i // 10 + 1) * 10 + (i % 10) // 5 + 1) for i, s in enumerate(staff)])
c.executemany("INSERT INTO wechats VALUES (1, ?, ?, ?, ?, 0, ?, ?)", [(w, f"wx{w}", f"号{w}", f"o{w}", staff[w * 4], start) for w in range(10)])
fans = [(i % 10, f"wxid_fan{i:06}") for i in range(5000)]
c.executemany("INSERT INTO fans VALUES (1, ?, ?, ?, '', '', '', ?, 0, 0, 0, ?, NULL, NULL, ?)", [(i, w, k, staff[random.randrange(40)], start, start) for i, (w, k) in enumerate(fans)])
rows = []
per = n // len(fans)
cid = 0
for w, k in fans:
    t = start + random.randrange(3600)
    for j in range(per):
        cid += 1
        send = j % 2
        t += random.choice([30, 90, 600, 86400 // 2, 86400 * 2])
        t = min(t, end - 1)
        rows.append((cid, w, k, send, f"消息内容 {cid}", f"m{cid}", t, t, staff[random.randrange(40)] if send else None))
    if len(rows) > 100000:
        c.executemany("INSERT INTO chats (merchant_id, chat_id, wechat_id, talker, issend, msg_type, content, resvred, sermsgid, chat_time, updated_at, staff_code, voice_txt, expand) VALUES (1, ?, ?, ?, ?, 1, ?, NULL, ?, ?, ?, ?, NULL, '')", rows)
        rows = []
c.executemany("INSERT INTO chats (merchant_id, chat_id, wechat_id, talker, issend, msg_type, content, resvred, sermsgid, chat_time, updated_at, staff_code, voice_txt, expand) VALUES (1, ?, ?, ?, ?, 1, ?, NULL, ?, ?, ?, ?, NULL, '')", rows)
c.execute("INSERT INTO id_counters VALUES (1, 'chat', ?) ON CONFLICT DO NOTHING", (cid,))
c.commit()
print(cid, "chats")
