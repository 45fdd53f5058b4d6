BEGIN TRANSACTION;
CREATE TABLE batch_cells (batch TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (batch, key));
INSERT INTO "batch_cells" VALUES('batch_ae6f41d664ab162e2df7f56e','86c9a16594b37649b6dd4443462e3ddaf6c7f16459ae742e90abedd431c6cf0a');
INSERT INTO "batch_cells" VALUES('batch_95343c7b7f44037cbf3caec4','04ecdfcdd0723f8dcc826a18b42a092b3cf7565fbecd259e1c13de24fc88f0c2');
INSERT INTO "batch_cells" VALUES('batch_91d3a259f1ba45ed348c08e0','266a8e73e811a83fb0d497e7ad94a8f9bcf5e38933b0553fc0ddb89a97b58dff');
INSERT INTO "batch_cells" VALUES('batch_91d3a259f1ba45ed348c08e0','3b0e49d25faf97dfb788b270cf87580499def1942aea60bc6ff6746118211171');
INSERT INTO "batch_cells" VALUES('batch_8fd786d5882a30ab96e287f1','0145dff69db2889337148af2266bc5a8fd06f220a8e2d4217cb59b8d3f0260eb');
INSERT INTO "batch_cells" VALUES('batch_8fd786d5882a30ab96e287f1','fe76f69bbaf4905fb066a908e9b3504ebcb7094659f536433646d9af67b90a2d');
CREATE TABLE batches (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    cells INTEGER NOT NULL,
    submitted REAL NOT NULL,
    updated REAL,
    cost REAL,
    error TEXT,
    collected INTEGER NOT NULL DEFAULT 0
);
INSERT INTO "batches" VALUES('batch_ae6f41d664ab162e2df7f56e','a/a','completed',1,1.79579949228371262546e+09,1.79579949232966470723e+09,8.0e-06,NULL,1);
INSERT INTO "batches" VALUES('batch_95343c7b7f44037cbf3caec4','b/b','completed',1,1.79579949228603863711e+09,1.79579949233517074591e+09,8.0e-06,NULL,1);
INSERT INTO "batches" VALUES('batch_91d3a259f1ba45ed348c08e0','a/a','validating',2,1.79579949235307478904e+09,1.79579949235861206051e+09,NULL,NULL,0);
INSERT INTO "batches" VALUES('batch_8fd786d5882a30ab96e287f1','b/b','validating',2,1.79579949235632085804e+09,1.79579949236026573176e+09,NULL,NULL,0);
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
INSERT INTO "cells" VALUES('86c9a16594b37649b6dd4443462e3ddaf6c7f16459ae742e90abedd431c6cf0a','a/a','{"messages":[{"content":"What is 2+2?","role":"user"}],"model":"a/a","options":{"temperature":0}}','done','batch:batch_ae6f41d664ab162e2df7f56e',NULL,1,'{"completion_tokens":5,"cost":8e-06,"error":null,"estimated_cost":null,"finish_reason":"stop","latency":0.045499324798583984,"prompt_tokens":6,"provider":"OpenAI","requests":1,"served_model":"a/a","text":"You said: What is 2+2?","total_tokens":11,"ttft":null,"value":"You said: What is 2+2?"}',8.0e-06,6,5,1.79579949232936048508e+09);
INSERT INTO "cells" VALUES('04ecdfcdd0723f8dcc826a18b42a092b3cf7565fbecd259e1c13de24fc88f0c2','b/b','{"messages":[{"content":"What is 2+2?","role":"user"}],"model":"b/b","options":{"temperature":0}}','done','batch:batch_95343c7b7f44037cbf3caec4',NULL,1,'{"completion_tokens":5,"cost":8e-06,"error":null,"estimated_cost":null,"finish_reason":"stop","latency":0.04881930351257324,"prompt_tokens":6,"provider":"OpenAI","requests":1,"served_model":"b/b","text":"You said: What is 2+2?","total_tokens":11,"ttft":null,"value":"You said: What is 2+2?"}',8.0e-06,6,5,1.79579949233498620993e+09);
INSERT INTO "cells" VALUES('266a8e73e811a83fb0d497e7ad94a8f9bcf5e38933b0553fc0ddb89a97b58dff','a/a','{"messages":[{"content":"Name a colour.","role":"user"}],"model":"a/a","options":{"temperature":0}}','running','batch:batch_91d3a259f1ba45ed348c08e0',NULL,1,NULL,NULL,NULL,NULL,1.79579949235307478904e+09);
INSERT INTO "cells" VALUES('0145dff69db2889337148af2266bc5a8fd06f220a8e2d4217cb59b8d3f0260eb','b/b','{"messages":[{"content":"Name a colour.","role":"user"}],"model":"b/b","options":{"temperature":0}}','running','batch:batch_8fd786d5882a30ab96e287f1',NULL,1,NULL,NULL,NULL,NULL,1.79579949235632085804e+09);
INSERT INTO "cells" VALUES('3b0e49d25faf97dfb788b270cf87580499def1942aea60bc6ff6746118211171','a/a','{"messages":[{"content":"Say hi.","role":"user"}],"model":"a/a","options":{"temperature":0}}','running','batch:batch_91d3a259f1ba45ed348c08e0',NULL,1,NULL,NULL,NULL,NULL,1.79579949235307478904e+09);
INSERT INTO "cells" VALUES('fe76f69bbaf4905fb066a908e9b3504ebcb7094659f536433646d9af67b90a2d','b/b','{"messages":[{"content":"Say hi.","role":"user"}],"model":"b/b","options":{"temperature":0}}','running','batch:batch_8fd786d5882a30ab96e287f1',NULL,1,NULL,NULL,NULL,NULL,1.79579949235632085804e+09);
CREATE TABLE grid_cells (
    grid TEXT NOT NULL,
    seq INTEGER NOT NULL,
    prompt_id TEXT NOT NULL,
    model TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (grid, seq),
    UNIQUE (grid, prompt_id, model)
);
INSERT INTO "grid_cells" VALUES('e135e4f584dfdaba1d302e5d4d0afd890cc9bf26c190c177b2afc77b8bd2145d',0,'0','a/a','86c9a16594b37649b6dd4443462e3ddaf6c7f16459ae742e90abedd431c6cf0a');
INSERT INTO "grid_cells" VALUES('e135e4f584dfdaba1d302e5d4d0afd890cc9bf26c190c177b2afc77b8bd2145d',1,'0','b/b','04ecdfcdd0723f8dcc826a18b42a092b3cf7565fbecd259e1c13de24fc88f0c2');
INSERT INTO "grid_cells" VALUES('daa8ea70fb6c304a8912a119752cca75340f5aa44d09ca5453dfba2cc2805861',0,'0','a/a','266a8e73e811a83fb0d497e7ad94a8f9bcf5e38933b0553fc0ddb89a97b58dff');
INSERT INTO "grid_cells" VALUES('daa8ea70fb6c304a8912a119752cca75340f5aa44d09ca5453dfba2cc2805861',1,'0','b/b','0145dff69db2889337148af2266bc5a8fd06f220a8e2d4217cb59b8d3f0260eb');
INSERT INTO "grid_cells" VALUES('daa8ea70fb6c304a8912a119752cca75340f5aa44d09ca5453dfba2cc2805861',2,'1','a/a','3b0e49d25faf97dfb788b270cf87580499def1942aea60bc6ff6746118211171');
INSERT INTO "grid_cells" VALUES('daa8ea70fb6c304a8912a119752cca75340f5aa44d09ca5453dfba2cc2805861',3,'1','b/b','fe76f69bbaf4905fb066a908e9b3504ebcb7094659f536433646d9af67b90a2d');
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
INSERT INTO "meta" VALUES('schema_version','1');
CREATE INDEX cells_owner ON cells (owner) WHERE state = 'running';
CREATE INDEX cells_model_state ON cells (model, state);
COMMIT;
