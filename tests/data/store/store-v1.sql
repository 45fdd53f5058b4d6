BEGIN TRANSACTION;
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
);
INSERT INTO "cells" VALUES('86c9a16594b37649b6dd4443462e3ddaf6c7f16459ae742e90abedd431c6cf0a','a/a','{"messages":[{"content":"What is 2+2?","role":"user"}],"model":"a/a","options":{"temperature":0}}','done','vm:28312:e106ee3201ec',NULL,1,'{"completion_tokens":5,"cost":1.6e-05,"error":null,"estimated_cost":null,"finish_reason":"stop","latency":0.04895968300115783,"prompt_tokens":6,"provider":"OpenAI","requests":1,"served_model":"a/a","text":"You said: What is 2+2?","total_tokens":11,"ttft":null,"value":"You said: What is 2+2?"}',1.6e-05,6,5,1.79579758906612849231e+09);
INSERT INTO "cells" VALUES('04ecdfcdd0723f8dcc826a18b42a092b3cf7565fbecd259e1c13de24fc88f0c2','b/b','{"messages":[{"content":"What is 2+2?","role":"user"}],"model":"b/b","options":{"temperature":0}}','done','vm:28312:e106ee3201ec',NULL,1,'{"completion_tokens":5,"cost":1.6e-05,"error":null,"estimated_cost":null,"finish_reason":"stop","latency":0.04997995800113131,"prompt_tokens":6,"provider":"OpenAI","requests":1,"served_model":"b/b","text":"You said: What is 2+2?","total_tokens":11,"ttft":null,"value":"You said: What is 2+2?"}',1.6e-05,6,5,1.79579758906735849378e+09);
INSERT INTO "cells" VALUES('266a8e73e811a83fb0d497e7ad94a8f9bcf5e38933b0553fc0ddb89a97b58dff','a/a','{"messages":[{"content":"Name a colour.","role":"user"}],"model":"a/a","options":{"temperature":0}}','done','vm:28312:e106ee3201ec',NULL,1,'{"completion_tokens":5,"cost":1.6e-05,"error":null,"estimated_cost":null,"finish_reason":"stop","latency":0.05030378300034499,"prompt_tokens":6,"provider":"OpenAI","requests":1,"served_model":"a/a","text":"You said: Name a colour.","total_tokens":11,"ttft":null,"value":"You said: Name a colour."}',1.6e-05,6,5,1.79579758906755948067e+09);
INSERT INTO "cells" VALUES('0145dff69db2889337148af2266bc5a8fd06f220a8e2d4217cb59b8d3f0260eb','b/b','{"messages":[{"content":"Name a colour.","role":"user"}],"model":"b/b","options":{"temperature":0}}','done','vm:28312:e106ee3201ec',NULL,1,'{"completion_tokens":5,"cost":1.6e-05,"error":null,"estimated_cost":null,"finish_reason":"stop","latency":0.05044314299993857,"prompt_tokens":6,"provider":"OpenAI","requests":1,"served_model":"b/b","text":"You said: Name a colour.","total_tokens":11,"ttft":null,"value":"You said: Name a colour."}',1.6e-05,6,5,1.79579758906772637364e+09);
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
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
INSERT INTO "meta" VALUES('schema_version','1');
CREATE INDEX cells_owner ON cells (owner) WHERE state = 'running';
CREATE INDEX cells_model_state ON cells (model, state);
COMMIT;
