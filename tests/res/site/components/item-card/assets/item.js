console.log("item")
