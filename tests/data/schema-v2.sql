CREATE TABLE newsletter_schema (
	version INTEGER NOT NULL
);
CREATE TABLE subscribers (
	id INTEGER NOT NULL, 
	email VARCHAR(320) NOT NULL, 
	email_key VARCHAR(320) NOT NULL, 
	name VARCHAR(200) DEFAULT '' NOT NULL, 
	language VARCHAR(35), 
	attributes JSON NOT NULL, 
	status VARCHAR(16) DEFAULT 'active' NOT NULL, 
	consent_source VARCHAR(300), 
	consent_at DATETIME, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT subscriber_status CHECK (status IN ('active', 'unsubscribed', 'bounced', 'complained')), 
	UNIQUE (email_key)
);
CREATE TABLE lists (
	id INTEGER NOT NULL, 
	name VARCHAR(64) NOT NULL, 
	description VARCHAR(500) DEFAULT '' NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (name)
);
CREATE TABLE suppressions (
	email_hash VARCHAR(64) NOT NULL, 
	reason VARCHAR(100) NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (email_hash)
);
CREATE TABLE subscriptions (
	subscriber_id INTEGER NOT NULL, 
	list_id INTEGER NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (subscriber_id, list_id), 
	CONSTRAINT subscription_status CHECK (status IN ('confirmed', 'unconfirmed', 'unsubscribed')), 
	FOREIGN KEY(subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE, 
	FOREIGN KEY(list_id) REFERENCES lists (id) ON DELETE CASCADE
);
CREATE INDEX subscriptions_by_list ON subscriptions (list_id, status, subscriber_id);
CREATE TABLE tags (
	subscriber_id INTEGER NOT NULL, 
	tag VARCHAR(64) NOT NULL, 
	PRIMARY KEY (subscriber_id, tag), 
	FOREIGN KEY(subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE
);
CREATE INDEX tags_by_tag ON tags (tag, subscriber_id);
CREATE TABLE campaigns (
	id INTEGER NOT NULL, 
	issue VARCHAR(64) NOT NULL, 
	issue_path VARCHAR(500) NOT NULL, 
	content_hash VARCHAR(64) NOT NULL, 
	segment VARCHAR(64) NOT NULL, 
	subject VARCHAR(300) NOT NULL, 
	recipients INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
CREATE INDEX campaigns_by_issue ON campaigns (issue, segment);
CREATE TABLE deliveries (
	campaign_id INTEGER NOT NULL, 
	subscriber_id INTEGER NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	attempts INTEGER DEFAULT '0' NOT NULL, 
	resent INTEGER DEFAULT '0' NOT NULL, 
	next_attempt_at DATETIME, 
	code INTEGER, 
	reply VARCHAR(500), 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (campaign_id, subscriber_id), 
	CONSTRAINT delivery_status CHECK (status IN ('pending', 'sending', 'sent', 'deferred', 'failed', 'skipped')), 
	FOREIGN KEY(campaign_id) REFERENCES campaigns (id) ON DELETE CASCADE
);
CREATE INDEX deliveries_by_state ON deliveries (campaign_id, status, subscriber_id);
INSERT INTO newsletter_schema (version) VALUES (2);
