BEGIN TRANSACTION;
CREATE TABLE attachments (hash TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE cells (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    owner TEXT,
    lease_until REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    cost REAL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    updated REAL
, kind TEXT NOT NULL DEFAULT 'grid', hits INTEGER NOT NULL DEFAULT 0);
INSERT INTO "cells" VALUES('86c9a16594b37649b6dd4443462e3ddaf6c7f16459ae742e90abedd431c6cf0a','a/a','{"messages":[{"content":"What is 2+2?","role":"user"}],"model":"a/a","options":{"temperature":0}}','done','vm:17369:6f98e99e788f',NULL,1,'{"completion_tokens":5,"cost":1.6e-05,"error":null,"estimated_cost":null,"finish_reason":"stop","latency":0.05914339300034044,"prompt_tokens":6,"provider":"OpenAI","requests":1,"served_model":"a/a","text":"You said: What is 2+2?","total_tokens":11,"ttft":null,"value":"You said: What is 2+2?"}',1.6e-05,6,5,1.79579948206220149989e+09,'grid',0);
INSERT INTO "cells" VALUES('04ecdfcdd0723f8dcc826a18b42a092b3cf7565fbecd259e1c13de24fc88f0c2','b/b','{"messages":[{"content":"What is 2+2?","role":"user"}],"model":"b/b","options":{"temperature":0}}','done','vm:17369:6f98e99e788f',NULL,1,'{"completion_tokens":5,"cost":1.6e-05,"error":null,"estimated_cost":null,"finish_reason":"stop","latency":0.05948575199909101,"prompt_tokens":6,"provider":"OpenAI","requests":1,"served_model":"b/b","text":"You said: What is 2+2?","total_tokens":11,"ttft":null,"value":"You said: What is 2+2?"}',1.6e-05,6,5,1.79579948206256365776e+09,'grid',0);
INSERT INTO "cells" VALUES('266a8e73e811a83fb0d497e7ad94a8f9bcf5e38933b0553fc0ddb89a97b58dff','a/a','{"messages":[{"content":"Name a colour.","role":"user"}],"model":"a/a","options":{"temperature":0}}','done','vm:17369:6f98e99e788f',NULL,1,'{"completion_tokens":5,"cost":1.6e-05,"error":null,"estimated_cost":null,"finish_reason":"stop","latency":0.059766416999991634,"prompt_tokens":6,"provider":"OpenAI","requests":1,"served_model":"a/a","text":"You said: Name a colour.","total_tokens":11,"ttft":null,"value":"You said: Name a colour."}',1.6e-05,6,5,1.79579948206290745732e+09,'grid',0);
INSERT INTO "cells" VALUES('0145dff69db2889337148af2266bc5a8fd06f220a8e2d4217cb59b8d3f0260eb','b/b','{"messages":[{"content":"Name a colour.","role":"user"}],"model":"b/b","options":{"temperature":0}}','done','vm:17369:6f98e99e788f',NULL,1,'{"completion_tokens":5,"cost":1.6e-05,"error":null,"estimated_cost":null,"finish_reason":"stop","latency":0.05993735599986394,"prompt_tokens":6,"provider":"OpenAI","requests":1,"served_model":"b/b","text":"You said: Name a colour.","total_tokens":11,"ttft":null,"value":"You said: Name a colour."}',1.6e-05,6,5,1.79579948206311917303e+09,'grid',0);
INSERT INTO "cells" VALUES('3d389d28f7b4c1e2e5257424488cdc1763080711d1e40dd32d44733dc4d41a03','a/a','{"base_url":"http://127.0.0.1:33035/api/v1","body":{"messages":[{"content":"You are a helpful assistant.","role":"system"},{"content":"Remember the number 7.","role":"user"}],"model":"a/a","temperature":0},"model":"a/a"}','done',NULL,NULL,0,'{"message": {"role": "assistant", "content": "You said: Remember the number 7."}, "content": "You said: Remember the number 7.", "tool_calls": [], "usage": {"prompt_tokens": 15, "completion_tokens": 6, "total_tokens": 21, "cost": 2.7e-05, "is_byok": false, "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0, "audio_tokens": 0, "video_tokens": 0}, "cost_details": {"upstream_inference_cost": 2.7e-05, "upstream_inference_prompt_cost": 1.5e-05, "upstream_inference_completions_cost": 1.2e-05}, "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": 0, "audio_tokens": 0}}, "finish_reason": "stop", "model": "a/a", "provider": "OpenAI", "id": "gen-1795799482-Jqp9WxnHirumpWVHQ7gn", "raw": {"id": "gen-1795799482-Jqp9WxnHirumpWVHQ7gn", "object": "chat.completion", "created": 1795799482, "model": "a/a", "provider": "OpenAI", "system_fingerprint": null, "service_tier": "default", "choices": [{"index": 0, "logprobs": null, "finish_reason": "stop", "native_finish_reason": "stop", "message": {"role": "assistant", "content": "You said: Remember the number 7.", "refusal": null, "reasoning": null}}], "usage": {"prompt_tokens": 15, "completion_tokens": 6, "total_tokens": 21, "cost": 2.7e-05, "is_byok": false, "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0, "audio_tokens": 0, "video_tokens": 0}, "cost_details": {"upstream_inference_cost": 2.7e-05, "upstream_inference_prompt_cost": 1.5e-05, "upstream_inference_completions_cost": 1.2e-05}, "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": 0, "audio_tokens": 0}}}}',2.7e-05,15,6,1795799482.09733,'response',0);
CREATE TABLE conversation_models (conversation TEXT NOT NULL, model TEXT NOT NULL, position INTEGER NOT NULL, PRIMARY KEY (conversation, model));
INSERT INTO "conversation_models" VALUES('20261127T171122-87800c14','a/a',0);
CREATE TABLE conversations (id TEXT PRIMARY KEY, created REAL NOT NULL, updated REAL NOT NULL, title TEXT, models TEXT NOT NULL, settings TEXT NOT NULL);
INSERT INTO "conversations" VALUES('20261127T171122-87800c14',1.79579948210103440284e+09,1.79579948210103440284e+09,'Remember the number 7.','["a/a"]','{"format": "irouter.chat/1", "models": ["a/a"], "system": "You are a helpful assistant.", "base_url": "http://127.0.0.1:33035/api/v1", "options": {"cache_responses": true, "temperature": 0}, "unsaved_options": [], "max_cost": null, "max_total_tokens": null, "allow_unpriced": false}');
CREATE TABLE grid_cells (
    grid TEXT NOT NULL,
    seq INTEGER NOT NULL,
    prompt_id TEXT NOT NULL,
    model TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (grid, seq),
    UNIQUE (grid, prompt_id, model)
);
INSERT INTO "grid_cells" VALUES('7abc9ee2f1e79348b9954007344a18973078caceab5b6bfde3470dff4000c940',0,'0','a/a','86c9a16594b37649b6dd4443462e3ddaf6c7f16459ae742e90abedd431c6cf0a');
INSERT INTO "grid_cells" VALUES('7abc9ee2f1e79348b9954007344a18973078caceab5b6bfde3470dff4000c940',1,'0','b/b','04ecdfcdd0723f8dcc826a18b42a092b3cf7565fbecd259e1c13de24fc88f0c2');
INSERT INTO "grid_cells" VALUES('7abc9ee2f1e79348b9954007344a18973078caceab5b6bfde3470dff4000c940',2,'1','a/a','266a8e73e811a83fb0d497e7ad94a8f9bcf5e38933b0553fc0ddb89a97b58dff');
INSERT INTO "grid_cells" VALUES('7abc9ee2f1e79348b9954007344a18973078caceab5b6bfde3470dff4000c940',3,'1','b/b','0145dff69db2889337148af2266bc5a8fd06f220a8e2d4217cb59b8d3f0260eb');
CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation TEXT NOT NULL, model TEXT NOT NULL, seq INTEGER NOT NULL, role TEXT, message TEXT NOT NULL, text TEXT, time REAL, UNIQUE (conversation, model, seq));
INSERT INTO "messages" VALUES(1,'20261127T171122-87800c14','a/a',0,'system','{"role": "system", "content": "You are a helpful assistant."}','You are a helpful assistant.',1.79579948210103440284e+09);
INSERT INTO "messages" VALUES(2,'20261127T171122-87800c14','a/a',1,'user','{"role": "user", "content": "Remember the number 7."}','Remember the number 7.',1.79579948210103440284e+09);
INSERT INTO "messages" VALUES(3,'20261127T171122-87800c14','a/a',2,'assistant','{"role": "assistant", "content": "You said: Remember the number 7."}','You said: Remember the number 7.',1.79579948210103440284e+09);
CREATE VIRTUAL TABLE messages_fts USING fts5(text);
INSERT INTO messages_fts (rowid, text) SELECT id, text FROM messages;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
INSERT INTO "meta" VALUES('fts','1');
INSERT INTO "meta" VALUES('schema_version','2');
CREATE TABLE requests (id INTEGER PRIMARY KEY, conversation TEXT, model TEXT NOT NULL, time REAL NOT NULL, cached INTEGER NOT NULL DEFAULT 0, cost REAL, prompt_tokens INTEGER, completion_tokens INTEGER, entry TEXT NOT NULL);
INSERT INTO "requests" VALUES(1,'20261127T171122-87800c14','a/a',1.79579948208811187746e+09,0,2.7e-05,15,6,'{"model": "a/a", "served_model": "a/a", "provider": "OpenAI", "generation_id": "gen-1795799482-Jqp9WxnHirumpWVHQ7gn", "prompt_tokens": 15, "completion_tokens": 6, "total_tokens": 21, "cached_tokens": 0, "reasoning_tokens": 0, "cost": 2.7e-05, "estimated_cost": null, "latency": 0.00880382700051996, "ttft": null, "finish_reason": "stop", "step": 1, "streamed": false, "time": 1795799482.0881119, "is_byok": false, "cached": false}');
CREATE INDEX cells_owner ON cells (owner) WHERE state = 'running';
CREATE INDEX cells_model_state ON cells (model, state);
CREATE INDEX cells_kind ON cells (kind, updated);
CREATE INDEX conversations_updated ON conversations (updated);
CREATE INDEX requests_conversation ON requests (conversation);
CREATE INDEX requests_time ON requests (time);
COMMIT;
