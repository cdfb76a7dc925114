--
-- encoding: SPEC "Pseudonymization" step 2: text is hashed as its UTF-8 bytes in every
-- database, so a LATIN1 database gives the SPEC vectors; SQL_ASCII text is hashed as stored.
-- The session sends UTF-8 (client_encoding), whatever the database stores.
--
SELECT deident.pseudonymize('José.Müller@exämple.org') AS utf8_vector,
       deident.pseudonymize('alice@contoso.com', 'Büro') AS utf8_domain,
       deident.pseudonymize_uuid('José.Müller@exämple.org', 'Büro') AS utf8_uuid,
       deident.pseudonymize_bigint('José.Müller@exämple.org') AS utf8_bigint,
       deident.pseudonymize_int(1001, 'Büro') AS utf8_int_domain;
CREATE DATABASE regress_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
CREATE DATABASE regress_sqlascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
CREATE DATABASE regress_win1252 ENCODING 'WIN1252' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;

\c regress_latin1
SET client_encoding = 'UTF8';
CREATE EXTENSION pg_deident;
SHOW server_encoding;
-- OK: the SPEC vectors, the non-ASCII one stored as LATIN1 (one byte per letter)
SELECT v, octet_length(v) AS stored_bytes, deident.pseudonymize(v)
  FROM (VALUES ('alice@contoso.com'), ('José.Müller@exämple.org')) t(v);
-- the domain is converted too, and every variant gives what the UTF-8 database gave
SELECT deident.pseudonymize('alice@contoso.com', 'Büro') AS latin1_domain,
       deident.pseudonymize_uuid('José.Müller@exämple.org', 'Büro') AS latin1_uuid,
       deident.pseudonymize_bigint('José.Müller@exämple.org') AS latin1_bigint,
       deident.pseudonymize_int(1001, 'Büro') AS latin1_int_domain;
-- a column of the database's own text, and a constant: one pseudonym per person
CREATE TABLE people (email text);
INSERT INTO people VALUES ('José.Müller@exämple.org'), ('zoë@contoso.com');
SELECT email, deident.pseudonymize(email) = deident.pseudonymize('José.Müller@exämple.org') AS is_jose
  FROM people ORDER BY email;
-- bytea is hashed as it is: its UTF-8 form gives the text pseudonym, its LATIN1 form does not
SELECT deident.pseudonymize(convert_to('José.Müller@exämple.org', 'UTF8')) AS utf8_bytes,
       deident.pseudonymize(convert_to('José.Müller@exämple.org', 'LATIN1')) AS latin1_bytes;
-- fail (a non-ASCII key id is echoed as printable ASCII, whatever the encoding)
SELECT deident.pseudonymize('a', '', 22, 'clé');

\c regress_sqlascii
SET client_encoding = 'UTF8';
CREATE EXTENSION pg_deident;
SHOW server_encoding;
-- SQL_ASCII declares no encoding: text is hashed as stored, here the UTF-8 that the client sent,
-- so the vector holds; a client sending LATIN1 bytes would get other pseudonyms
SELECT deident.pseudonymize('José.Müller@exämple.org') AS stored_as_sent;

\c regress_win1252
SET client_encoding = 'UTF8';
CREATE EXTENSION pg_deident;
SHOW server_encoding;
-- WIN1252 leaves byte 0x81 undefined: a value can hold it (single-byte encodings accept every
-- byte), and it has no UTF-8 form. PostgreSQL's conversion error would show the byte:
SELECT octet_length(convert_from('\x41815a'::bytea, 'WIN1252')) AS stored_bytes;
-- fail (pg_deident's own error, which shows no byte of the value)
SELECT deident.pseudonymize(convert_from('\x41815a'::bytea, 'WIN1252'));
-- and the same for a restricted role reading such a value in an identifier column
CREATE TABLE odd (email text);
INSERT INTO odd VALUES (convert_from('\x41815a'::bytea, 'WIN1252'));
SECURITY LABEL FOR deident ON COLUMN odd.email IS 'identifier';
CREATE ROLE regress_win_analyst;
GRANT SELECT ON odd TO regress_win_analyst;
SECURITY LABEL FOR deident ON ROLE regress_win_analyst IS 'restricted';
SET ROLE regress_win_analyst;
SELECT email FROM odd;
RESET ROLE;
-- OK: its bytes can be pseudonymized as bytea
SELECT deident.pseudonymize(convert_to(email, 'WIN1252')) FROM odd;
DROP TABLE odd;
DROP ROLE regress_win_analyst;

\c deident_regress
DROP DATABASE regress_latin1;
DROP DATABASE regress_sqlascii;
DROP DATABASE regress_win1252;
