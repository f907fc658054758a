package container

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"regexp"
)

// newID returns a random 64-hex-digit container ID that does not start with
// a digit-only 12-character prefix (docker's rule, so short IDs never look
// like numbers).
func newID() (string, error) {
	b := make([]byte, 32)
	for {
		if _, err := rand.Read(b); err != nil {
			return "", fmt.Errorf("making container ID: %w", err)
		}
		id := hex.EncodeToString(b)
		if !allDigits(id[:12]) {
			return id, nil
		}
	}
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ShortID is the 12-digit form of a container ID that ps and create print.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// fullID is a full container ID: only such a reference names a directory.
var fullID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// validName is docker's rule for container names.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

var adjectives = [...]string{
	"admiring", "agitated", "amazing", "angry", "awesome", "blissful", "bold", "boring",
	"brave", "busy", "charming", "clever", "compassionate", "competent", "confident", "cool",
	"dazzling", "determined", "eager", "ecstatic", "elastic", "elated", "elegant", "epic",
	"exciting", "fervent", "festive", "flamboyant", "focused", "friendly", "frosty", "funny",
	"gallant", "gifted", "goofy", "gracious", "happy", "hardcore", "heuristic", "hopeful",
	"hungry", "infallible", "inspiring", "jolly", "jovial", "keen", "kind", "laughing",
	"loving", "lucid", "magical", "modest", "musing", "mystifying", "naughty", "nervous",
	"nice", "nifty", "nostalgic", "objective", "optimistic", "peaceful", "pedantic", "pensive",
	"practical", "priceless", "quirky", "quizzical", "relaxed", "reverent", "romantic", "serene",
	"sharp", "silly", "sleepy", "stoic", "strange", "stupefied", "suspicious", "sweet",
	"tender", "thirsty", "trusting", "unruffled", "upbeat", "vibrant", "vigilant", "vigorous",
	"wizardly", "wonderful", "xenodochial", "youthful", "zealous", "zen",
}

var nouns = [...]string{
	"albatross", "antelope", "badger", "beaver", "bison", "buffalo", "camel", "caribou",
	"cheetah", "condor", "cormorant", "coyote", "crane", "dingo", "dolphin", "eagle",
	"falcon", "ferret", "finch", "flamingo", "fox", "gazelle", "gecko", "gibbon",
	"giraffe", "gopher", "grouse", "hedgehog", "heron", "hippo", "ibex", "ibis",
	"iguana", "impala", "jackal", "jaguar", "kangaroo", "kestrel", "kingfisher", "koala",
	"lemur", "leopard", "llama", "lobster", "lynx", "magpie", "manatee", "marmot",
	"meerkat", "mongoose", "moose", "narwhal", "newt", "ocelot", "octopus", "okapi",
	"osprey", "otter", "owl", "panda", "panther", "pelican", "penguin", "platypus",
	"puffin", "quail", "quokka", "raccoon", "raven", "reindeer", "salamander", "seal",
	"shrew", "sparrow", "squid", "starling", "stork", "swan", "tapir", "tiger",
	"toucan", "turtle", "urchin", "viper", "vulture", "walrus", "weasel", "whale",
	"wolf", "wombat", "yak", "zebra",
}

// randomName returns a docker-style adjective_noun name not in taken; after
// many collisions it appends a digit, as docker does.
func randomName(taken map[string]bool) (string, error) {
	for i := 0; ; i++ {
		a, err := rand.Int(rand.Reader, big.NewInt(int64(len(adjectives))))
		if err != nil {
			return "", err
		}
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(nouns))))
		if err != nil {
			return "", err
		}
		name := adjectives[a.Int64()] + "_" + nouns[n.Int64()]
		if i >= 10 {
			d, _ := rand.Int(rand.Reader, big.NewInt(10))
			name = fmt.Sprintf("%s%d", name, d.Int64())
		}
		if !taken[name] {
			return name, nil
		}
	}
}
