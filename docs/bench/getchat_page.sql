-- The statement chats_page sends on PostgreSQL for a GetChat page of 50 (51 rows: one more
-- tells whether another page follows), with a random merchant, fan and cursor of the
-- `juhe bench getchat` data set. docs/benchmarks.md, "Issue 5 targets, third round".
\set m random(1, 100)
\set w 99999 + :m
\set f random(0, 49)
\set min random(0, 7000)
SELECT chat_id, talker, issend, resvred, wechat_id, updated_at, msg_type, sermsgid, chat_time, content, staff_code, voice_txt, expand, (SELECT wechat_nober FROM wechats WHERE merchant_id = :m AND wechat_id = :w) AS nober, COALESCE((SELECT photo FROM fans WHERE merchant_id = :m AND wechat_id = :w AND wenober = 'wxid_bench_fan_' || :f), '') AS photo, COALESCE((SELECT name FROM fans WHERE merchant_id = :m AND wechat_id = :w AND wenober = 'wxid_bench_fan_' || :f), '') AS name FROM chats WHERE EXISTS (SELECT 1 FROM wechats w WHERE w.merchant_id = :m AND w.wechat_id = :w) AND merchant_id = :m AND wechat_id = :w AND talker = 'wxid_bench_fan_' || :f AND chat_id > :min ORDER BY chat_id LIMIT 51 OFFSET 0;
