-- Sample data for `make demo` (scripts/demo-postgres.sh loads it once into
-- the demo's `orders` and `orders_staging` databases). Made-up people; the
-- SSNs, cards and phone numbers are well-known test values. The orders-db
-- mask rules in policies/data/access/data.yaml cover customers.email
-- (partial), customers.ssn (redact) and the PII inside orders.notes.
CREATE TABLE customers (
  id         int PRIMARY KEY,
  name       text NOT NULL,
  email      text NOT NULL,
  ssn        text NOT NULL,
  phone      text,
  notes      text,
  created_at date NOT NULL DEFAULT '2026-01-01'
);
CREATE TABLE orders (
  id          int PRIMARY KEY,
  customer_id int NOT NULL REFERENCES customers,
  amount      numeric(10,2) NOT NULL,
  status      text NOT NULL DEFAULT 'paid',
  notes       text
);
INSERT INTO customers (id, name, email, ssn, phone, notes, created_at) VALUES
  (1, 'Ada Lovelace',    'ada@example.com',     '078-05-1120', '+1 415 555 0101',  'prefers email',                      '2025-11-02'),
  (2, 'Alan Turing',     'alan@example.org',    '219-09-9999', '+44 20 7946 0958', 'card 4111 1111 1111 1111 on file',   '2025-12-14'),
  (3, 'Grace Hopper',    'grace@example.net',   '457-55-5462', '+1 212 555 0199',  NULL,                                 '2026-01-05'),
  (4, 'Katherine Johnson','kj@example.com',     '123-45-6789', '+1 757 555 0142',  'VIP, call before shipping',          '2026-01-19'),
  (5, 'Edsger Dijkstra', 'ewd@example.nl',      '001-01-0001', '+31 20 555 0123',  NULL,                                 '2026-02-01');
INSERT INTO orders (id, customer_id, amount, status, notes) VALUES
  (10, 1,  42.50, 'paid',     'ship to ada@example.com'),
  (11, 2,  10.00, 'paid',     'call +1 415 555 0101 before delivery'),
  (12, 3,  99.99, 'shipped',  'gift wrap'),
  (13, 4, 250.00, 'refund requested', 'customer sent card 5500 0000 0000 0004 by mistake'),
  (14, 5,   7.25, 'paid',     NULL);
