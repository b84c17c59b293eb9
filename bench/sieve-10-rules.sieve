# The delivery workload's Sieve script (bench/run --sieve, issue 13): ten rules of the
# kinds users write, run by Letterbox and by Dovecot's Pigeonhole alike. The bench's
# messages match none of the filing rules (every test is evaluated, the body test
# included) and get a keyword from the last one, then stay in INBOX, where the workload
# counts and checks them.
require ["fileinto", "imap4flags", "envelope", "body", "subaddress", "relational",
         "comparator-i;ascii-numeric", "regex", "variables", "mailbox"];

# 1. a mailing list
if header :contains "List-Id" "announce.lists.example.net" {
    fileinto :create "Lists/Announce"; stop;
}
# 2. a sender's domain
if address :is :domain "from" "newsletter.example.net" {
    fileinto :create "Newsletters"; stop;
}
# 3. a +tag of the recipient
if envelope :is :detail "to" "shop" {
    fileinto :create "Shopping"; stop;
}
# 4. notifications, by a regular expression on the subject
if header :regex "subject" "^\\[(jira|github)\\] " {
    fileinto :create "Notifications"; stop;
}
# 5. very large mail
if size :over 10M {
    fileinto :create "Large"; stop;
}
# 6. bulk mail, by its text
if body :text :contains "unsubscribe from this list" {
    fileinto :create "Bulk"; stop;
}
# 7. a score header, compared as a number
if header :value "ge" :comparator "i;ascii-numeric" "X-Spam-Score" "8" {
    fileinto "Junk"; stop;
}
# 8. someone important
if anyof (address :is "from" "boss@example.com", header :contains "subject" "urgent!") {
    addflag "\\Flagged";
}
# 9. invoices, by number
if header :matches "subject" "Invoice #*" {
    set "number" "${1}";
    fileinto :create "Invoices"; stop;
}
# 10. a keyword on what is left
if exists "X-Bench-Id" {
    addflag "$bench";
}
keep;
